/**
 * The live stream's messages: typed, versioned JSON sent by `anvil serve` over its WebSocket endpoint
 * (and by the client helper's Observable). Pure types and a validator, no Node modules: a browser
 * bundle may import this file.
 *
 * Versioning: every message carries `v` ({@link LIVE_PROTOCOL_VERSION}). Fields are only ever added
 * within a version; a client ignores fields and message types it does not know.
 */

/** Version of the message set. */
export const LIVE_PROTOCOL_VERSION = 1;

/** One plotted number of an estimate, with its error band when the estimate bounds it coordinate-wise. */
export interface LiveSeriesPoint {
  /** Short label (`λ1`, `mean[3]`, `explained[2]`…). */
  name: string;
  value: number;
  /** Lower and upper edge of the band `value ± ε` (or the method's own interval). */
  lo?: number;
  hi?: number;
}

/** A compact, JSON-safe view of an estimate (the full value may be a large matrix: it is summarised). */
export interface LiveEstimate {
  /** Numbers to plot, in a stable order across the job's estimates. */
  series: LiveSeriesPoint[];
  epsilon: number;
  delta: number;
  norm: string;
  coverage: number;
  blocksUsed: number;
  blocksMissing: number;
  bytesMoved: number;
  method: string;
  parts: { sampling: { epsilon: number; delta: number }; sketch: { epsilon: number; delta: number } };
  final: boolean;
}

/** State of a depot as the coordinator sees it. */
export type DepotState = 'up' | 'slow' | 'failed';

export interface JobStartedMessage {
  v: 1;
  type: 'job-started';
  jobId: string;
  /** Human name (`streaming PCA of sensors.xnd`). */
  name: string;
  at: number;
  dataset?: { rows: number; cols: number; blocks: number };
}

export interface EstimateMessage {
  v: 1;
  type: 'estimate';
  jobId: string;
  /** Increases by one per estimate of the job; a gap means intermediate estimates were dropped for a slow client. */
  seq: number;
  at: number;
  estimate: LiveEstimate;
}

export interface DepotHealthMessage {
  v: 1;
  type: 'depot-health';
  depot: string;
  state: DepotState;
  /** Posterior probability that the depot answers, in [0, 1]. */
  reliability: number;
  at: number;
  /** Why the state changed (`connection refused`, `timeout after 2000 ms`…). */
  reason?: string;
}

export interface SourceWeightMessage {
  v: 1;
  type: 'source-weight';
  source: string;
  weight: number;
  reliability: number;
  at: number;
}

export interface JobDoneMessage {
  v: 1;
  type: 'job-done';
  jobId: string;
  at: number;
}

export interface JobFailedMessage {
  v: 1;
  type: 'job-failed';
  jobId: string;
  at: number;
  /** Stable error code (`COORD_E_COVERAGE`…). */
  code: string;
  message: string;
}

/** Something the user should see on the timeline (a depot killed or restarted by the demo, a note). */
export interface EventMessage {
  v: 1;
  type: 'event';
  at: number;
  kind: 'failure' | 'recovery' | 'info';
  text: string;
  depot?: string;
}

/** First message on every connection: what the server is and the jobs it knows. */
export interface HelloMessage {
  v: 1;
  type: 'hello';
  server: string;
  jobs: Array<{ jobId: string; name: string; state: 'running' | 'done' | 'failed' }>;
}

/** A refused client message; the connection stays open (unless the client exceeded its limits). */
export interface ErrorMessage {
  v: 1;
  type: 'error';
  code: LiveErrorCodeValue;
  message: string;
}

/** Everything the server sends. */
export type LiveMessage =
  | HelloMessage
  | JobStartedMessage
  | EstimateMessage
  | DepotHealthMessage
  | SourceWeightMessage
  | JobDoneMessage
  | JobFailedMessage
  | EventMessage
  | ErrorMessage;

/** What a client may send: which jobs to receive (`'*'` = all, the default on connect). */
export type LiveClientMessage = { v: 1; type: 'subscribe'; jobs: '*' | string[] } | { v: 1; type: 'unsubscribe'; jobs: string[] };

/** Stable codes of the live server's `error` messages (documented in docs/errors.md). */
export const LiveErrorCode = {
  /** The client message is not JSON, not an object, or has an unknown type or bad fields. */
  BAD_MESSAGE: 'LIVE_E_BAD_MESSAGE',
  /** The message carries a protocol version this server does not speak. */
  VERSION: 'LIVE_E_VERSION',
} as const;
export type LiveErrorCodeValue = (typeof LiveErrorCode)[keyof typeof LiveErrorCode];

const MAX_SUBSCRIBE_JOBS = 256;
const JOB_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Parses a client message. Returns the message, or an `error` message to send back; never throws.
 * Strings in errors are never echoed raw (only their length or a safe excerpt).
 */
export function parseClientMessage(text: string): LiveClientMessage | ErrorMessage {
  const bad = (message: string, code: LiveErrorCodeValue = LiveErrorCode.BAD_MESSAGE): ErrorMessage => ({
    v: 1,
    type: 'error',
    code,
    message,
  });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return bad(`not JSON (${text.length} bytes)`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('a message must be a JSON object');
  const m = raw as Record<string, unknown>;
  if (m['v'] !== LIVE_PROTOCOL_VERSION) return bad(`protocol version must be ${LIVE_PROTOCOL_VERSION}`, LiveErrorCode.VERSION);
  const type = m['type'];
  if (type !== 'subscribe' && type !== 'unsubscribe') return bad('`type` must be "subscribe" or "unsubscribe"');
  const jobs = m['jobs'];
  if (type === 'subscribe' && jobs === '*') return { v: 1, type, jobs: '*' };
  if (!Array.isArray(jobs) || jobs.length > MAX_SUBSCRIBE_JOBS || !jobs.every((j) => typeof j === 'string' && JOB_ID.test(j))) {
    return bad(`\`jobs\` must be "*" or a list of at most ${MAX_SUBSCRIBE_JOBS} job ids ([A-Za-z0-9._:-], 1–128 chars)`);
  }
  return type === 'subscribe' ? { v: 1, type, jobs: jobs as string[] } : { v: 1, type, jobs: jobs as string[] };
}

/** True when a message belongs to a job (and so is filtered by subscriptions). */
export function jobOf(m: LiveMessage): string | undefined {
  return 'jobId' in m ? m.jobId : undefined;
}
