import type { Duplex } from 'node:stream';

/** How a connection the depot is done with gets released. */
export interface ReleaseLimits {
  /** Input still read (and discarded) after the depot's last reply; past it the socket is reset. */
  readonly drainBytes: number;
  /** The socket is destroyed at the latest this long after the release starts. */
  readonly lingerMs: number;
  /** Do not wait for the client: destroy as soon as the replies are flushed (still within `lingerMs`). */
  readonly flushOnly?: boolean;
}

/**
 * Closes a socket the depot has finished with, so that it is certainly released and its client
 * learns the outcome at once:
 *
 * - the depot's side is ended (FIN after the replies already written);
 * - the client's remaining input is read and discarded — never buffered — so a client still
 *   sending a body behind a refused command can finish and read the reply;
 * - the socket is destroyed as soon as the client closes its side, or once more than
 *   `drainBytes` arrived (the kernel then resets the connection: the client's writes fail at
 *   once), or `lingerMs` after the release started, whatever the client does;
 * - with `flushOnly`, it is destroyed as soon as the replies are flushed.
 *
 * Resolves when the socket is closed. Never rejects.
 */
export function releaseSocket(socket: Duplex, limits: ReleaseLimits): Promise<void> {
  return new Promise<void>((resolve) => {
    if (socket.destroyed) {
      if (socket.closed) resolve();
      else socket.once('close', () => resolve());
      return;
    }
    let drained = 0;
    /** Destroys once everything written so far has been handed to the kernel. */
    const destroyWhenFlushed = () => {
      if (socket.writableFinished) socket.destroy();
      else socket.once('finish', () => socket.destroy());
    };
    const onData = (chunk: Buffer) => {
      drained += chunk.length;
      if (drained > limits.drainBytes) socket.destroy();
    };
    const timer = setTimeout(() => socket.destroy(), limits.lingerMs);
    socket.once('close', () => {
      clearTimeout(timer);
      socket.off('data', onData);
      resolve();
    });
    socket.on('error', () => undefined);
    socket.on('data', onData);
    socket.once('end', destroyWhenFlushed);
    if (!socket.writableEnded) socket.end();
    socket.resume();
    if (socket.readableEnded || limits.flushOnly === true) destroyWhenFlushed();
  });
}
