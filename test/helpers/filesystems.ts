import { execFileSync } from 'node:child_process';
import { open, type FileHandle } from 'node:fs/promises';
import { tempDir } from './temp-dir.js';

/** Whether this process may mount a tmpfs (root, and a kernel that lets it): tests of a really full filesystem. */
export function canMountTmpfs(): boolean {
  if (process.getuid?.() !== 0) return false;
  const d = tempDir();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', d.path], { stdio: 'ignore' });
    execFileSync('umount', [d.path], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    d.cleanup();
  }
}

/**
 * Disk I/O (a depot's `diskIo`) whose file handles take their methods from `calls(handle, path,
 * flags)` where it names them (the real handle passed in), the rest from the real handle: writes,
 * syncs or reads that fail as a test draws them. `calls` returning undefined leaves that file's
 * handle as it is.
 */
export function interceptedIo(
  calls: (target: FileHandle, path: string, flags: number) => Partial<Record<string | symbol, unknown>> | undefined,
) {
  return {
    open: async (path: string, flags: number): Promise<FileHandle> => {
      const fh = await open(path, flags, 0o600);
      const own = calls(fh, path, flags);
      if (own === undefined) return fh;
      return new Proxy(fh, {
        get(target, prop, receiver) {
          if (Object.prototype.hasOwnProperty.call(own, prop)) return own[prop];
          const v = Reflect.get(target, prop, receiver) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    },
  };
}

/** Disk I/O (a depot's `diskIo`) whose writes fail with `code` once `budget` bytes have been written. */
export function faultyWritevIo(state: { budget: number; code: string }) {
  return interceptedIo((target) => ({
    writev: async (buffers: Buffer[], position: number) => {
      const n = buffers.reduce((s, b) => s + b.length, 0);
      if (n > state.budget) throw Object.assign(new Error(`${state.code}: injected fault`), { code: state.code });
      state.budget -= n;
      return target.writev(buffers, position);
    },
  }));
}
