import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  augment,
  download,
  formatFor,
  readExnode,
  refreshLeases,
  statMappings,
  trimMappings,
  upload,
  writeExnode,
  type Exnode,
} from '../../framework/index.js';
import { formatCapability } from '../../ibp/index.js';
import { RawSession, keyOf, startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

/** `YYYY-MM-DD HH:MM:SS` in local time, as LoRS 2.0 writes a lease bound. */
function lorsTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

interface LorsMapping {
  offset: number;
  length: number;
  caps: { read: string; write: string; manage: string };
  startMs: number;
  endMs: number;
}

/** An exNode as LoRS 2.0's `lors_upload` writes it (file metadata and mapping metadata in name order). */
function lorsXnd(
  file: { name: string; size: number; created: number; duration: number; parent: string },
  ms: LorsMapping[],
): string {
  const md = (name: string, type: string, value: string | number) =>
    value === ''
      ? `<exnode:metadata name="${name}" type="${type}"/>`
      : `<exnode:metadata name="${name}" type="${type}">${value}</exnode:metadata>`;
  const mappings = ms.map(
    (m) => `  <exnode:mapping>
    ${md('alloc_length', 'integer', m.length)}
    ${md('alloc_offset', 'integer', 0)}
    ${md('e2e_blocksize', 'integer', 0)}
    ${md('end', 'string', lorsTime(m.endMs))}
    ${md('exnode_offset', 'integer', m.offset)}
    ${md('logical_length', 'integer', m.length)}
    ${md('start', 'string', lorsTime(m.startMs))}
    <exnode:read>${m.caps.read}</exnode:read>
    <exnode:write>${m.caps.write}</exnode:write>
    <exnode:manage>${m.caps.manage}</exnode:manage>
  </exnode:mapping>
`,
  );
  return `<?xml version="1.0"?>
<exnode xmlns:exnode="http://loci.cs.utk.edu/exnode">
  ${md('Version', 'string', '3.0')}
  ${md('created', 'integer', file.created)}
  ${md('duration', 'double', file.duration.toFixed(6))}
  ${md('filename', 'string', file.name)}
  ${md('lorsversion', 'double', '2.000000')}
  ${md('mode', 'string', 'file')}
  ${md('modified', 'integer', file.created)}
  ${md('parent', 'string', file.parent)}
  ${md('size', 'integer', file.size)}
${mappings.join('')}</exnode>
`;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('files LoRS 2.0 and Anvil both read, write and maintain (in-process depots)', () => {
  const dir = tempDir('anvil-lors-interop-');
  const depots: TestDepot[] = [];
  const data = randomBytes(250_000);
  beforeAll(async () => {
    for (let i = 0; i < 3; i++)
      depots.push(await startDepot({ resource: [{ rid: '1', capacityBytes: '64MiB', maxDurationSec: 7200 }] }));
  });
  afterAll(async () => {
    for (const d of depots) await d.close();
    dir.cleanup();
  });
  const client = () => depots[0]!.client;
  const addrs = () => depots.map((d) => ({ host: d.host, port: d.port }));

  /** What `lors_ls` asks a depot for each mapping: a version-0 PROBE with the read cap. */
  async function lorsProbe(port: number, cap: string): Promise<string[]> {
    const s = await RawSession.open(port);
    try {
      s.send(`0 9 ${keyOf(cap)} 40 0 0 0 0 0\n`);
      return (await s.line()).trim().split(' ');
    } finally {
      s.end();
    }
  }

  it('PROBE answers for the read and the write cap as for the manage cap; CHNG still needs the manage cap', async () => {
    const caps = await client().allocate(addrs()[0]!, { size: 1000, durationSec: 600 });
    await client().store(caps.write, Buffer.alloc(123, 1));
    const port = depots[0]!.port;
    const viaManage = await lorsProbe(port, formatCapability(caps.manage));
    expect(viaManage[0]).toBe('1');
    expect(viaManage[3]).toBe('123'); // size
    for (const cap of [caps.read, caps.write]) {
      const reply = await lorsProbe(port, formatCapability(cap));
      expect(reply.slice(0, 5)).toEqual(viaManage.slice(0, 5));
    }
    const s = await RawSession.open(port);
    try {
      s.send(`1 9 ${keyOf(formatCapability(caps.read))} 43 3 2000 60 2 10\n`);
      expect(await s.line()).toBe('-4 \n');
    } finally {
      s.end();
    }
  });

  it('an exNode LoRS wrote is listed, downloaded, augmented, refreshed and trimmed by Anvil, and stays LoRS’s', async () => {
    // Two blocks on depot 0, stored as lors_upload does, described in LoRS's own words.
    const now = Date.now();
    const mappings: LorsMapping[] = [];
    for (const [offset, length] of [
      [0, 150_000],
      [150_000, 100_000],
    ] as const) {
      const caps = await client().allocate(addrs()[0]!, { size: length, durationSec: 3600 });
      await client().store(caps.write, data.subarray(offset, offset + length));
      mappings.push({
        offset,
        length,
        caps: { read: formatCapability(caps.read), write: formatCapability(caps.write), manage: formatCapability(caps.manage) },
        startMs: now,
        endMs: now + 3_600_000,
      });
    }
    const path = join(dir.path, 'from-lors.xnd');
    const original = lorsXnd(
      { name: 'sensor.bin', size: data.length, created: Math.floor(now / 1000), duration: 3600, parent: 'dir-42' },
      mappings,
    );
    writeFileSync(path, original);

    // ls / stat
    const x = await readExnode(path);
    expect(x.size).toBe(data.length);
    expect(x.mappings.map((m) => Math.floor(m.leaseEndMs / 1000))).toEqual(mappings.map((m) => Math.floor(m.endMs / 1000)));
    expect((await statMappings(client(), x)).every((s) => s.alive)).toBe(true);
    // download: identical bytes
    const out = join(dir.path, 'from-lors.out');
    await download(client(), x, out);
    expect(sha(readFileSync(out))).toBe(sha(data));
    // augment to 2 copies, then refresh, then trim one mapping: each rewrite goes to disk as the CLI does it
    expect(await augment(client(), x, { copies: 2, depots: addrs(), durationSec: 600 })).toEqual({ added: 2, short: 0 });
    await writeExnode(path, x);
    const refreshed = await refreshLeases(client(), await readExnode(path), { extendBySec: 100 });
    expect(refreshed.failed).toBe(0);
    const y = await readExnode(path);
    await refreshLeases(client(), y, { extendBySec: 100 });
    await writeExnode(path, y);
    const z = await readExnode(path);
    expect(z.mappings).toHaveLength(4);
    await trimMappings(client(), z, [0], false);
    expect(formatFor(path)).toBe('xnd');
    await writeExnode(path, z);

    const text = readFileSync(path, 'utf8');
    // LoRS's file metadata survived every rewrite, and every lease is still in LoRS's form.
    for (const line of [
      '<exnode:metadata name="Version" type="string">3.0</exnode:metadata>',
      `<exnode:metadata name="created" type="integer">${Math.floor(now / 1000)}</exnode:metadata>`,
      '<exnode:metadata name="duration" type="double">3600.000000</exnode:metadata>',
      '<exnode:metadata name="mode" type="string">file</exnode:metadata>',
      '<exnode:metadata name="parent" type="string">dir-42</exnode:metadata>',
      `<exnode:metadata name="size" type="integer">${data.length}</exnode:metadata>`,
    ])
      expect(text).toContain(line);
    expect([...text.matchAll(/name="(start|end)" type="string">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</g)]).toHaveLength(6);
    // and it still downloads to the same bytes
    await download(client(), await readExnode(path), join(dir.path, 'again.out'));
    expect(sha(readFileSync(join(dir.path, 'again.out')))).toBe(sha(data));
  });

  it('an exNode Anvil wrote shows LoRS real sizes and leases', async () => {
    const file = join(dir.path, 'anvil.bin');
    writeFileSync(file, data);
    const x: Exnode = await upload(client(), file, { depots: addrs(), blockSize: 100_000, copies: 1, durationSec: 1800 });
    const path = join(dir.path, 'anvil.xnd');
    await writeExnode(path, x);
    const text = readFileSync(path, 'utf8');
    const blocks = text.split('<exnode:mapping>').slice(1);
    expect(blocks).toHaveLength(3);
    for (const [i, block] of blocks.entries()) {
      const meta = (name: string) => new RegExp(`name="${name}" type="(\\w+)">([^<]*)<`).exec(block)!.slice(1);
      // The lease as LoRS reads it: a local time string, the one Anvil recorded (to the second).
      const m = x.mappings[i]!;
      expect(meta('start')).toEqual(['string', lorsTime(m.leaseStartMs)]);
      expect(meta('end')).toEqual(['string', lorsTime(m.leaseEndMs)]);
      // The allocation as lors_ls sees it: PROBE with the read cap gives its size and lease.
      const cap = /<exnode:read>([^<]+)</.exec(block)![1]!;
      const port = Number(/:(\d+)\//.exec(cap)![1]);
      const reply = await lorsProbe(port, cap);
      expect(reply[0]).toBe('1');
      expect(Number(reply[3])).toBe(Number(meta('logical_length')[1]));
      expect(Number(reply[5])).toBeGreaterThan(1700);
    }
    expect(text).toContain(`<exnode:metadata name="size" type="integer">${data.length}</exnode:metadata>`);
    expect(text).toContain('<exnode:metadata name="lorsversion" type="double">2.000000</exnode:metadata>');
    expect(text).toContain('<exnode:metadata name="duration" type="double">1800.000000</exnode:metadata>');
  });
});
