import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Duplex } from 'node:stream';
import type { Subscription } from 'rxjs';
import { WebSocketServer, type WebSocket } from 'ws';
import { FrameworkError, FrameworkErrorCode } from '../errors.js';
import { LiveHub } from './live-hub.js';
import { LIVE_PROTOCOL_VERSION, jobOf, parseClientMessage, type LiveMessage } from './messages.js';

/** Defaults of {@link LiveServerOptions}; each is documented in docs/live.md. */
export const DEFAULT_LIVE_PORT = 8714;
export const DEFAULT_LIVE_MAX_CLIENTS = 64;
export const DEFAULT_LIVE_MAX_PAYLOAD = 4096;
export const DEFAULT_LIVE_SOFT_BUFFER_BYTES = 256 * 1024;
export const DEFAULT_LIVE_HARD_BUFFER_BYTES = 4 * 1024 * 1024;
export const DEFAULT_LIVE_HEARTBEAT_MS = 15_000;
/** A client that sends this many refused messages is disconnected. */
const MAX_BAD_MESSAGES = 50;
/** How often pending (coalesced) estimates are retried for slow clients. */
const FLUSH_INTERVAL_MS = 100;

export interface LiveServerOptions {
  /** Address to listen on (default 127.0.0.1: the dashboard is local unless asked otherwise). */
  host?: string;
  /** TCP port (default 8714; 0 picks a free one). */
  port?: number;
  /** The hub jobs publish to (default: a new one, see {@link LiveServer.hub}). */
  hub?: LiveHub;
  /** Most WebSocket clients at once; the next upgrade gets HTTP 503. */
  maxClients?: number;
  /** Largest client message in bytes (ws `maxPayload`); a larger one closes that client (1009). */
  maxPayload?: number;
  /** Past this many bytes queued to a client, intermediate estimates are dropped (the latest is kept). */
  softBufferBytes?: number;
  /** Past this many bytes queued to a client, it is disconnected (1013). */
  hardBufferBytes?: number;
  /** Ping interval; a client that has not answered the previous ping is terminated. */
  heartbeatMs?: number;
  /**
   * Origins (`http://host:port`) allowed to open the WebSocket from a browser, or `'*'`. The server's own
   * origin and clients sending no Origin header (programs) are always allowed.
   */
  allowedOrigins?: readonly string[] | '*';
}

interface Client {
  ws: WebSocket;
  alive: boolean;
  jobs: '*' | Set<string>;
  bad: number;
  /** Latest estimate per job not yet sent because the client was slow. */
  pending: Map<string, LiveMessage>;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** The repository (package) root: where `dashboard/` and `node_modules/` are, from source or from dist/. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'anvil') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the anvil package root');
    dir = up;
  }
}

function positive(value: number | undefined, fallback: number, field: string, min = 1): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < min) {
    throw new FrameworkError(
      FrameworkErrorCode.INVALID_ARGUMENT,
      `live server: \`${field}\` must be an integer >= ${min} (got ${v})`,
    );
  }
  return v;
}

/**
 * `anvil serve`: an HTTP server for the dashboard and a WebSocket endpoint (`/live`) streaming the hub's
 * messages. Limits as a careful WebSocket server sets them: bounded clients and payloads, a per-client
 * buffer with a slow-client policy (drop intermediate estimates, keep the latest; disconnect past a hard
 * cap), heartbeats that terminate dead peers, an origin allow-list, no compression.
 */
export class LiveServer {
  readonly hub: LiveHub;
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly clients = new Set<Client>();
  private readonly opts: Required<Omit<LiveServerOptions, 'hub' | 'allowedOrigins'>> & {
    allowedOrigins: readonly string[] | '*';
  };
  private readonly root = packageRoot();
  private subscription: Subscription | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private flusher: NodeJS.Timeout | undefined;
  private boundPort = 0;

  constructor(options: LiveServerOptions = {}) {
    this.hub = options.hub ?? new LiveHub();
    this.opts = {
      host: options.host ?? '127.0.0.1',
      port: positive(options.port, DEFAULT_LIVE_PORT, 'port', 0),
      maxClients: positive(options.maxClients, DEFAULT_LIVE_MAX_CLIENTS, 'maxClients'),
      maxPayload: positive(options.maxPayload, DEFAULT_LIVE_MAX_PAYLOAD, 'maxPayload', 64),
      softBufferBytes: positive(options.softBufferBytes, DEFAULT_LIVE_SOFT_BUFFER_BYTES, 'softBufferBytes'),
      hardBufferBytes: positive(options.hardBufferBytes, DEFAULT_LIVE_HARD_BUFFER_BYTES, 'hardBufferBytes'),
      heartbeatMs: positive(options.heartbeatMs, DEFAULT_LIVE_HEARTBEAT_MS, 'heartbeatMs', 10),
      allowedOrigins: options.allowedOrigins ?? [],
    };
    if (this.opts.port > 65535) {
      throw new FrameworkError(
        FrameworkErrorCode.INVALID_ARGUMENT,
        `live server: \`port\` must be <= 65535 (got ${this.opts.port})`,
      );
    }
    if (this.opts.hardBufferBytes < this.opts.softBufferBytes) {
      throw new FrameworkError(
        FrameworkErrorCode.INVALID_ARGUMENT,
        'live server: `hardBufferBytes` must be >= `softBufferBytes`',
      );
    }
    this.http = createServer((req, res) => void this.serveHttp(req, res));
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.opts.maxPayload, perMessageDeflate: false });
    this.http.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
  }

  /** The dashboard's address once listening. */
  get url(): string {
    return `http://${this.opts.host}:${this.boundPort}/`;
  }

  get port(): number {
    return this.boundPort;
  }

  /** Number of connected WebSocket clients. */
  get clientCount(): number {
    return this.clients.size;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.opts.port, this.opts.host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    const addr = this.http.address();
    this.boundPort = typeof addr === 'object' && addr !== null ? addr.port : this.opts.port;
    this.subscription = this.hub.messages.subscribe((m) => this.broadcast(m));
    this.heartbeat = setInterval(() => this.beat(), this.opts.heartbeatMs);
    this.flusher = setInterval(() => this.flushPending(), FLUSH_INTERVAL_MS);
    this.heartbeat.unref();
    this.flusher.unref();
    return this;
  }

  /** Closes every client (1001) and the listening socket. */
  async close(): Promise<void> {
    this.subscription?.unsubscribe();
    clearInterval(this.heartbeat);
    clearInterval(this.flusher);
    for (const c of this.clients) c.ws.close(1001, 'server shutting down');
    const forced = setTimeout(() => {
      for (const c of this.clients) c.ws.terminate();
    }, 1000);
    forced.unref();
    this.wss.close();
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
    clearTimeout(forced);
    for (const c of this.clients) c.ws.terminate();
    this.clients.clear();
  }

  private originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    if (this.opts.allowedOrigins === '*') return true;
    const own = [`http://${req.headers.host ?? ''}`, `http://${this.opts.host}:${this.boundPort}`];
    return own.includes(origin) || this.opts.allowedOrigins.includes(origin);
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refuse = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      socket.destroy();
    };
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/live') return refuse(404, 'Not Found');
    if (!this.originAllowed(req)) return refuse(403, 'Forbidden');
    if (this.clients.size >= this.opts.maxClients) return refuse(503, 'Service Unavailable');
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
  }

  private accept(ws: WebSocket): void {
    const client: Client = { ws, alive: true, jobs: '*', bad: 0, pending: new Map() };
    this.clients.add(client);
    ws.on('pong', () => {
      client.alive = true;
    });
    ws.on('message', (data, isBinary) => this.onClientMessage(client, isBinary ? undefined : data.toString('utf8')));
    ws.on('close', () => this.clients.delete(client));
    ws.on('error', () => {
      this.clients.delete(client);
      ws.terminate();
    });
    this.send(client, { v: LIVE_PROTOCOL_VERSION, type: 'hello', server: 'anvil', jobs: this.hub.jobList() });
    for (const m of this.hub.snapshot()) this.deliver(client, m);
  }

  private onClientMessage(client: Client, text: string | undefined): void {
    const parsed =
      text === undefined
        ? ({ v: 1, type: 'error', code: 'LIVE_E_BAD_MESSAGE', message: 'binary messages are not accepted' } as const)
        : parseClientMessage(text);
    if (parsed.type === 'error') {
      client.bad++;
      this.send(client, parsed);
      if (client.bad >= MAX_BAD_MESSAGES) client.ws.close(1008, 'too many bad messages');
      return;
    }
    if (parsed.type === 'subscribe') {
      client.jobs = parsed.jobs === '*' ? '*' : new Set([...(client.jobs === '*' ? [] : client.jobs), ...parsed.jobs]);
      // Bring the newly subscribed jobs up to date.
      for (const m of this.hub.snapshot()) {
        const job = jobOf(m);
        if (job !== undefined && (parsed.jobs === '*' || parsed.jobs.includes(job))) this.deliver(client, m);
      }
    } else if (client.jobs === '*') {
      client.jobs = new Set(this.hub.jobList().map((j) => j.jobId));
      for (const j of parsed.jobs) client.jobs.delete(j);
    } else {
      for (const j of parsed.jobs) client.jobs.delete(j);
    }
  }

  private broadcast(m: LiveMessage): void {
    for (const c of this.clients) this.deliver(c, m);
  }

  /** Applies the client's subscription and the slow-client policy to one message. */
  private deliver(client: Client, m: LiveMessage): void {
    const job = jobOf(m);
    if (job !== undefined && client.jobs !== '*' && !client.jobs.has(job)) return;
    if (client.ws.bufferedAmount > this.opts.hardBufferBytes) {
      client.ws.close(1013, 'client too slow');
      setTimeout(() => client.ws.terminate(), 1000).unref();
      this.clients.delete(client);
      return;
    }
    if (m.type === 'estimate') {
      if (client.ws.bufferedAmount > this.opts.softBufferBytes || client.pending.size > 0) {
        // Keep only the latest estimate per job; it is sent when the client catches up.
        if (!m.estimate.final) {
          client.pending.set(m.jobId, m);
          return;
        }
        client.pending.delete(m.jobId);
      }
    } else if (job !== undefined && client.pending.has(job)) {
      // Keep order within a job: its pending estimate goes before its end.
      this.send(client, client.pending.get(job)!);
      client.pending.delete(job);
    }
    this.send(client, m);
  }

  private flushPending(): void {
    for (const c of this.clients) {
      if (c.pending.size === 0 || c.ws.bufferedAmount > this.opts.softBufferBytes) continue;
      const pending = [...c.pending.values()];
      c.pending.clear();
      for (const m of pending) this.send(c, m);
    }
  }

  private send(client: Client, m: LiveMessage): void {
    if (client.ws.readyState !== client.ws.OPEN) return;
    client.ws.send(JSON.stringify(m));
  }

  private beat(): void {
    for (const c of this.clients) {
      if (!c.alive) {
        c.ws.terminate();
        this.clients.delete(c);
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }

  private async serveHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/api/snapshot') {
      const body = JSON.stringify({ v: LIVE_PROTOCOL_VERSION, jobs: this.hub.jobList(), messages: this.hub.snapshot() });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(body);
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n');
      return;
    }
    const file = this.staticFile(path);
    if (file === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    try {
      const body = await readFile(file);
      const ext = file.slice(file.lastIndexOf('.'));
      res
        .writeHead(200, {
          'Content-Type': CONTENT_TYPES[ext] ?? 'application/octet-stream',
          'Cache-Control': 'no-cache',
          'X-Content-Type-Options': 'nosniff',
        })
        .end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    }
  }

  /** Maps a URL path to a file of the dashboard or of uPlot, refusing anything outside them. */
  private staticFile(path: string): string | undefined {
    if (path === '/' || path === '/index.html') return join(this.root, 'dashboard', 'index.html');
    if (path === '/vendor/uPlot.iife.min.js') return join(this.root, 'node_modules', 'uplot', 'dist', 'uPlot.iife.min.js');
    if (path === '/vendor/uPlot.min.css') return join(this.root, 'node_modules', 'uplot', 'dist', 'uPlot.min.css');
    if (!path.startsWith('/dashboard/')) return undefined;
    const base = join(this.root, 'dashboard');
    const file = normalize(join(base, path.slice('/dashboard/'.length)));
    return file.startsWith(base + sep) ? file : undefined;
  }
}
