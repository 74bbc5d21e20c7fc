import { readdirSync, readFileSync } from 'node:fs';

/** Resident memory and open file descriptors of a process, read from /proc. */
export interface ProcessStats {
  readonly rssKiB: number;
  readonly fds: number;
}

/** The stats of `pid`, or `undefined` when it is not alive (gone or a zombie). */
export function processStats(pid: number): ProcessStats | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    if (/^State:\s+[ZX]/m.test(status)) return undefined;
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    return { rssKiB: rss === null ? 0 : Number(rss[1]), fds };
  } catch {
    return undefined;
  }
}

export const isAlive = (pid: number): boolean => processStats(pid) !== undefined;

/**
 * Waits (bounded) until the stats of `pid` are back near `baseline`: fds at most `fdSlack` above, RSS
 * at most `rssSlackKiB` above. Returns the last stats seen.
 */
export async function settleNear(
  pid: number,
  baseline: ProcessStats,
  options: { fdSlack: number; rssSlackKiB: number; timeoutMs: number },
): Promise<{ stats: ProcessStats | undefined; settled: boolean }> {
  const deadline = Date.now() + options.timeoutMs;
  let stats = processStats(pid);
  while (Date.now() < deadline) {
    stats = processStats(pid);
    if (stats === undefined) return { stats, settled: false };
    if (stats.fds <= baseline.fds + options.fdSlack && stats.rssKiB <= baseline.rssKiB + options.rssSlackKiB) {
      return { stats, settled: true };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { stats, settled: false };
}
