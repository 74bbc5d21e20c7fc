import { Subject, type Observable } from 'rxjs';
import type { EventMessage, LiveMessage } from './messages.js';

/** Timeline events kept for clients that connect later. */
const KEPT_EVENTS = 200;
/** Estimates kept per job for clients that connect later (enough to draw the curve so far). */
const KEPT_ESTIMATES = 600;
/** Jobs remembered after they end. */
const KEPT_JOBS = 32;

interface JobState {
  started: LiveMessage;
  estimates: LiveMessage[];
  end: LiveMessage | undefined;
}

/**
 * Where jobs publish what the live server streams. It relays every message to the current
 * subscribers and keeps a bounded picture of the present (each job's start, its recent estimates and
 * end, each depot's and source's latest state, recent timeline events) so a client that connects
 * or reconnects later sees the same dashboard as one that was there from the start.
 */
export class LiveHub {
  private readonly subject = new Subject<LiveMessage>();
  private readonly jobs = new Map<string, JobState>();
  private readonly depots = new Map<string, LiveMessage>();
  private readonly sources = new Map<string, LiveMessage>();
  private readonly events: EventMessage[] = [];

  /** Every message published from now on. */
  get messages(): Observable<LiveMessage> {
    return this.subject.asObservable();
  }

  publish(m: LiveMessage): void {
    this.remember(m);
    this.subject.next(m);
  }

  /** The present, as a sequence of messages that rebuilds it (jobs in start order). */
  snapshot(): LiveMessage[] {
    const out: LiveMessage[] = [];
    for (const j of this.jobs.values()) {
      out.push(j.started, ...j.estimates);
      if (j.end !== undefined) out.push(j.end);
    }
    out.push(...this.depots.values(), ...this.sources.values(), ...this.events);
    return out;
  }

  /** Jobs known, for the hello message. */
  jobList(): Array<{ jobId: string; name: string; state: 'running' | 'done' | 'failed' }> {
    return [...this.jobs.values()].map((j) => {
      const s = j.started as Extract<LiveMessage, { type: 'job-started' }>;
      const state = j.end === undefined ? 'running' : j.end.type === 'job-done' ? 'done' : 'failed';
      return { jobId: s.jobId, name: s.name, state };
    });
  }

  /** Ends the stream for subscribers (the server closes its clients). */
  complete(): void {
    this.subject.complete();
  }

  private remember(m: LiveMessage): void {
    switch (m.type) {
      case 'job-started':
        this.jobs.delete(m.jobId);
        this.jobs.set(m.jobId, { started: m, estimates: [], end: undefined });
        while (this.jobs.size > KEPT_JOBS) this.jobs.delete(this.jobs.keys().next().value!);
        return;
      case 'estimate': {
        const j = this.jobs.get(m.jobId);
        if (j === undefined) return;
        j.estimates.push(m);
        if (j.estimates.length > KEPT_ESTIMATES) j.estimates.splice(0, j.estimates.length - KEPT_ESTIMATES);
        return;
      }
      case 'job-done':
      case 'job-failed': {
        const j = this.jobs.get(m.jobId);
        if (j !== undefined) j.end = m;
        return;
      }
      case 'depot-health':
        this.depots.set(m.depot, m);
        return;
      case 'source-weight':
        this.sources.set(m.source, m);
        return;
      case 'event':
        this.events.push(m);
        if (this.events.length > KEPT_EVENTS) this.events.splice(0, this.events.length - KEPT_EVENTS);
        return;
      default:
        return;
    }
  }
}
