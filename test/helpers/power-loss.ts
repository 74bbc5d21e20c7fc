import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './temp-dir.js';

const SOURCE = fileURLToPath(new URL('./native/power-loss.cc', import.meta.url));

/** What a cut put back (see {@link PowerLoss.cut}). */
export interface Cut {
  /** Files put back to their content at their last sync. */
  putBack: number;
  /** Files never synced, emptied. */
  emptied: number;
  /** Each file the cut changed: its path and the bytes it took back (differing, or cut off). */
  changed: { path: string; bytes: number }[];
  /** Calls outside the model (`sync`, `syncfs`, a waiting `sync_file_range`, `msync`): none expected. */
  unmodelled: string[];
}

/**
 * A simulated power cut for a depot process (test/helpers/native/power-loss.cc, built here with the
 * system's C++ compiler): the depot runs with {@link env}, which preloads a library that copies
 * every file under its data directory as each successful fsync or fdatasync begins, and applies
 * truncates at the next sync of any file; once the depot is killed, {@link cut} puts each file back
 * to that copy, or empties it if it was never synced, as a power cut leaves the disk when nothing
 * written since a file's last sync reached it. Names are taken as durable at once.
 */
export interface PowerLoss {
  /** The environment a depot over `dataDir` runs with so that {@link cut} can judge it. */
  env(dataDir: string): Record<string, string>;
  /** Cuts the power under `dataDir`: call it only once the depot has exited. */
  cut(dataDir: string): Cut;
  /** Removes the library, the program and the copies. */
  cleanup(): void;
}

function compile(args: string[]): void {
  const cxx = process.env['CXX']?.trim() || 'g++';
  const r = spawnSync(cxx, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot build the power-loss helper with ${cxx}: ${r.error?.message ?? r.stderr}`);
}

/** Builds the library and the cutting program. Throws (with the compiler's words) if it cannot. */
export function powerLoss(): PowerLoss {
  const dir = tempDir('anvil-power-loss-');
  const lib = join(dir.path, 'power-loss.so');
  const cutter = join(dir.path, 'power-loss-cut');
  const shadow = join(dir.path, 'shadow');
  mkdirSync(shadow);
  try {
    compile(['-shared', '-fPIC', '-O1', '-o', lib, SOURCE, '-ldl']);
    compile(['-O1', '-DPOWER_LOSS_CUT', '-o', cutter, SOURCE]);
  } catch (e) {
    dir.cleanup();
    throw e;
  }
  return {
    env: (dataDir) => ({
      LD_PRELOAD: lib,
      ANVIL_POWERLOSS_DIR: dataDir,
      ANVIL_POWERLOSS_SHADOW: shadow,
      // File system calls through libuv's thread pool and libc, where the library sees them (not
      // through io_uring, which it would not).
      UV_USE_IO_URING: '0',
    }),
    cut: (dataDir) => {
      const r = spawnSync(cutter, [dataDir, shadow], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`power-loss cut failed: ${r.stderr || r.error?.message}`);
      return JSON.parse(r.stdout) as Cut;
    },
    cleanup: () => dir.cleanup(),
  };
}
