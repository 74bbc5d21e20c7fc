import { Observable } from 'rxjs';
import { WebSocket } from 'ws';
import { LIVE_PROTOCOL_VERSION, jobOf, type LiveMessage } from './messages.js';

export interface LiveStreamOptions {
  /** Jobs to receive (default all). */
  jobs?: '*' | string[];
  /** Reconnect after the server goes away (default true), waiting `retryMs` (doubling up to 5 s). */
  reconnect?: boolean;
  retryMs?: number;
  /** Largest message accepted from the server (default 16 MiB). */
  maxPayload?: number;
}

/**
 * The live stream of an `anvil serve` server as an Observable: every message the server sends, typed.
 * The stream reconnects after a server restart (the server then replays its present state), and
 * completes only when unsubscribed — or, with `reconnect: false`, when the connection closes.
 *
 * @example
 * liveStream('ws://127.0.0.1:8714/live').pipe(filter((m) => m.type === 'estimate')).subscribe(console.log);
 */
export function liveStream(url: string, options: LiveStreamOptions = {}): Observable<LiveMessage> {
  const reconnect = options.reconnect ?? true;
  const baseRetry = options.retryMs ?? 250;
  const wanted = options.jobs === undefined || options.jobs === '*' ? undefined : new Set(options.jobs);
  return new Observable<LiveMessage>((subscriber) => {
    let ws: WebSocket | undefined;
    let timer: NodeJS.Timeout | undefined;
    let retry = baseRetry;
    let stopped = false;
    const open = () => {
      ws = new WebSocket(url, { maxPayload: options.maxPayload ?? 16 * 1024 * 1024, perMessageDeflate: false });
      ws.on('open', () => {
        retry = baseRetry;
        if (wanted !== undefined) ws!.send(JSON.stringify({ v: LIVE_PROTOCOL_VERSION, type: 'subscribe', jobs: [...wanted] }));
      });
      ws.on('message', (data) => {
        let m: unknown;
        try {
          m = JSON.parse(data.toString('utf8'));
        } catch {
          return;
        }
        if (typeof m !== 'object' || m === null || (m as { v?: unknown }).v !== LIVE_PROTOCOL_VERSION) return;
        // The server replays its whole present before it sees the subscription: filter here too.
        const job = jobOf(m as LiveMessage);
        if (wanted !== undefined && job !== undefined && !wanted.has(job)) return;
        subscriber.next(m as LiveMessage);
      });
      ws.on('error', () => undefined);
      ws.on('close', () => {
        if (stopped) return;
        if (!reconnect) {
          subscriber.complete();
          return;
        }
        timer = setTimeout(open, retry);
        retry = Math.min(retry * 2, 5000);
      });
    };
    open();
    return () => {
      stopped = true;
      clearTimeout(timer);
      ws?.removeAllListeners('message');
      ws?.on('error', () => undefined);
      if (ws !== undefined && ws.readyState === ws.CONNECTING) ws.terminate();
      else ws?.close();
    };
  });
}
