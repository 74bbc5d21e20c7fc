import { execFileSync } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { NetLab, netnsUnavailable } from './lib/netns.js';

/** The chaos suite's network-namespace lab: links, partitions, and a clean-up that leaves nothing behind. */
const why = netnsUnavailable();
if (why !== undefined) console.log(`netns lab tests skipped: ${why}`);

const namespaces = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });

/** Whether a TCP connection from this process to `host:port` opens within `ms`. */
const reaches = (host: string, port: number, ms: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = connect({ host, port });
    const t = setTimeout(() => (s.destroy(), resolve(false)), ms);
    s.once('connect', () => (clearTimeout(t), s.destroy(), resolve(true)));
    s.once('error', () => (clearTimeout(t), resolve(false)));
  });

describe.skipIf(why !== undefined)('netns lab', () => {
  it('reaches a listener inside a node, loses it under a partition, and gets it back when healed', async () => {
    const lab = NetLab.open(2);
    try {
      // A listener inside node 1: a child node process bound to the node's address.
      const child = lab.spawnIn(1, process.execPath, [
        '-e',
        `require('net').createServer((s) => (s.on('error', () => {}), s.end('hi'))).listen(7000, '${lab.nodes[1]!.ip}', () => console.log('up'))`,
      ]);
      await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
      expect(await reaches(lab.nodes[1]!.ip, 7000, 2_000)).toBe(true);
      lab.partition(1, true);
      expect(lab.rules(1)).toContain('drop');
      expect(await reaches(lab.nodes[1]!.ip, 7000, 800)).toBe(false);
      lab.partition(1, false);
      expect(lab.rules(1)).not.toContain('drop');
      expect(await reaches(lab.nodes[1]!.ip, 7000, 2_000)).toBe(true);
    } finally {
      expect(await lab.close()).toEqual([]);
    }
    expect(namespaces()).not.toContain(lab.tag);
  }, 30_000);

  it('removes every namespace, link, rule and child of a lab whose user failed', async () => {
    let lab: NetLab | undefined;
    const server = createServer();
    await expect(
      (async () => {
        lab = NetLab.open(2);
        try {
          lab.shape(0, { delayMs: 5, jitterMs: 2, lossPct: 5 });
          lab.partition(1, true);
          lab.spawnIn(0, 'sleep', ['30']);
          throw new Error('the test failed here');
        } finally {
          await lab.close();
        }
      })(),
    ).rejects.toThrow('the test failed here');
    server.close();
    expect(lab!.leftovers()).toEqual([]);
    expect(namespaces()).not.toContain(lab!.tag);
    expect(execFileSync('ip', ['link'], { encoding: 'utf8' })).not.toContain(lab!.rootIf);
  }, 30_000);
});
