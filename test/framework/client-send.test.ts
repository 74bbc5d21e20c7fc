import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { IbpClient } from '../../framework/index.js';

describe('IbpClient sending a body to a peer that goes away', () => {
  it('a streamed STORE whose peer closes after the go-ahead fails within the deadline', async () => {
    const server = createServer((s) => {
      s.on('error', () => undefined);
      s.once('data', () => {
        s.write('1 \n');
        setTimeout(() => s.destroy(), 50);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const client = new IbpClient({ timeoutMs: 1000 });
    try {
      const cap = `ibp://127.0.0.1:${port}/1#k/1/WRITE`;
      const started = Date.now();
      const chunk = Buffer.alloc(1 << 20, 1);
      const e = await client
        .storeFrom(cap, 3 << 20, async (write) => {
          for (let i = 0; i < 3; i++) {
            await new Promise((r) => setTimeout(r, 200)); // a slow source: the peer is gone by now
            await write(chunk);
          }
        })
        .catch((x: unknown) => x);
      expect(e).toMatchObject({ code: expect.stringMatching(/^CLIENT_ERR_(CONNECTION|TIMEOUT)$/) });
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      client.close();
      server.close();
    }
  });
});
