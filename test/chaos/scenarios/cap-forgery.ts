import { IbpClient, capTokens } from '../../../ibp/index.js';
import { ChaosDepots } from '../lib/chaos-depots.js';
import type { Prng } from '../lib/prng.js';
import { RawWire } from '../lib/raw-wire.js';
import { median, round, type Scenario } from '../lib/scenario.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

type Kind = 'random' | 'near-miss' | 'bit-flip' | 'truncated' | 'wrong-type' | 'wrong-rid';
const KINDS: readonly Kind[] = ['random', 'near-miss', 'bit-flip', 'truncated', 'wrong-type', 'wrong-rid'];

const otherChar = (r: Prng, c: string): string => {
  for (;;) {
    const x = r.pick([...ALPHABET]);
    if (x !== c) return x;
  }
};

/** A forged `RID#KEY` token for a LOAD or PROBE, of the given kind, from the real read/manage keys. */
function forge(r: Prng, kind: Kind, rid: string, key: string, otherKeys: readonly string[]): string {
  switch (kind) {
    case 'random':
      return `${rid}#${Array.from({ length: key.length }, () => r.pick([...ALPHABET])).join('')}`;
    case 'near-miss': {
      // all but the last character right: the longest possible matching prefix
      const i = key.length - 1;
      return `${rid}#${key.slice(0, i)}${otherChar(r, key[i]!)}`;
    }
    case 'bit-flip': {
      const i = r.int(0, key.length - 1);
      return `${rid}#${key.slice(0, i)}${otherChar(r, key[i]!)}${key.slice(i + 1)}`;
    }
    case 'truncated':
      return `${rid}#${key.slice(0, r.int(1, key.length - 1))}`;
    case 'wrong-type':
      return `${rid}#${r.pick(otherKeys)}`;
    case 'wrong-rid':
      return `${r.pick(['0', '2', '17', '99999999', `${rid}0`])}#${key}`;
  }
}

/**
 * Capability forgery: random, near-miss, bit-flipped, truncated, wrong-type and wrong-RID keys in LOAD and
 * PROBE requests against a live depot. None may be accepted; the rejection time of a near miss (all but
 * one character right) and of a random key are printed side by side.
 */
export const capForgery: Scenario = {
  name: 'cap-forgery',
  exclusive: true,
  async run(ctx) {
    const total = ctx.scale === 'short' ? 3_000 : 100_000;
    const depots = await ChaosDepots.start(1, ctx.dir);
    const addr = depots.depots[0]!;
    const client = new IbpClient({ timeoutMs: 5_000 });
    const f = ctx.figures;
    const times: Record<Kind, number[]> = {
      random: [],
      'near-miss': [],
      'bit-flip': [],
      truncated: [],
      'wrong-type': [],
      'wrong-rid': [],
    };
    let accepted = 0;
    let tried = 0;
    let otherReplies = 0;
    try {
      const caps = await client.allocate(addr, { size: 64, durationSec: 3600 });
      await client.store(caps.write, Buffer.alloc(16, 1));
      const [readTok, wrm] = capTokens(caps.read);
      const [writeTok] = capTokens(caps.write);
      const [manageTok] = capTokens(caps.manage);
      const rid = caps.read.rid;
      const keyOf = (t: string) => t.slice(t.indexOf('#') + 1);
      // sanity: the real caps are accepted on this very path
      const real = await RawWire.open(addr.port);
      real.send(`1 8 ${readTok} ${wrm} 0 16 10\n`);
      const ok = await real.next(2_000);
      real.destroy();
      if (ok.kind !== 'line' || !ok.line.startsWith('1 16')) f.violate('cap-forgery: the real read cap was not accepted');
      let next = 0;
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          const r = ctx.rand.fork();
          let w = await RawWire.open(addr.port);
          while (next < total) {
            next++;
            const kind = KINDS[next % KINDS.length]!;
            // PROBE takes the read, write or manage key (as LoCI): wrong-type forgeries go to LOAD only.
            const probe = kind !== 'wrong-type' && r.chance(0.5);
            const [key, others] = probe
              ? [keyOf(manageTok), [keyOf(readTok), keyOf(writeTok)]]
              : [keyOf(readTok), [keyOf(writeTok), keyOf(manageTok)]];
            const tok = forge(r, kind, rid, key, others);
            const line = probe ? `1 9 ${tok} ${wrm} 40 3 0 0 0 10\n` : `1 8 ${tok} ${wrm} 0 16 10\n`;
            const t0 = process.hrtime.bigint();
            w.send(line);
            const o = await w.next(2_000);
            const us = Number(process.hrtime.bigint() - t0) / 1e3;
            tried++;
            if (o.kind === 'line' && o.line.startsWith('1')) {
              accepted++;
              ctx.log(`ACCEPTED forged cap (${kind}): ${line.trim()}`);
            } else if (o.kind === 'line') {
              times[kind].push(us);
              if (!o.line.startsWith('-4 ')) otherReplies++;
            }
            if (o.kind !== 'line' || w.closed) {
              w.destroy();
              w = await RawWire.open(addr.port);
            }
          }
          w.destroy();
        }),
      );
      depots.checkAlive();
    } finally {
      client.close();
      await depots.stop();
    }
    f.count('forged_caps_accepted', accepted);
    f.count('depot_crashes', depots.crashes);
    f.set('forged_caps_tried', tried);
    f.set('forged_caps_other_replies', otherReplies);
    f.set('reject_median_near_miss_us', round(median(times['near-miss']), 1));
    f.set('reject_median_random_us', round(median(times.random), 1));
    f.set('reject_median_bit_flip_us', round(median(times['bit-flip']), 1));
    ctx.log(
      `${tried} forged caps, ${accepted} accepted; rejection medians (µs, round trip): ` +
        KINDS.map((k) => `${k} ${round(median(times[k]), 1)}`).join(', '),
    );
  },
};
