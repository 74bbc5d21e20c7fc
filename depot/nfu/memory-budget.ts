import { totalmem } from 'node:os';
import { DepotError, DepotErrorCode } from '../errors.js';

const MiB = 1024 * 1024;

/**
 * The default of `nfu.memoryBudgetMb`: a sixteenth of the machine's memory, from 128 MiB to 4 GiB
 * (1.5 GiB on a 24 GiB machine: about five concurrent ops on 256 MiB disk inputs; half as many on
 * memory inputs, whose pinned ranges are charged too).
 */
export function defaultNfuMemoryBudgetMb(): number {
  return Math.min(4096, Math.max(128, Math.floor(totalmem() / MiB / 16)));
}

/**
 * The bytes NFU ops may hold at once (`nfu.memoryBudgetMb`): their input buffers, outputs and
 * kernel scratch, and the memory ranges they pin (a writer racing an op copies what it changes). An op is admitted only if its estimate fits beside the ops already admitted;
 * otherwise it is refused with `-66 <retry>` before anything is read. An op larger than the whole
 * budget can never run and is refused with `-19`, saying so.
 */
export class NfuMemoryBudget {
  private used = 0;

  constructor(
    readonly limitBytes: number,
    private readonly retrySec: number,
  ) {}

  /** Bytes held by admitted ops. */
  get inUse(): number {
    return this.used;
  }

  /** Admits an op of `bytes`; returns its release (idempotent), or throws the refusal. */
  reserve(bytes: number, what: string): () => void {
    if (!(bytes <= this.limitBytes)) {
      throw new DepotError(
        DepotErrorCode.WOULD_EXCEED_LIMIT,
        `${what} needs about ${mib(bytes)} MiB of NFU memory; nfu.memoryBudgetMb allows ${mib(this.limitBytes)} MiB`,
      );
    }
    if (this.used + bytes > this.limitBytes) {
      throw new DepotError(
        DepotErrorCode.OVERLOADED,
        `NFU memory budget: ${what} needs ${mib(bytes)} MiB, ${mib(this.limitBytes - this.used)} of ${mib(this.limitBytes)} MiB are free`,
        { details: { retryAfterSec: this.retrySec } },
      );
    }
    this.used += bytes;
    let released = false;
    return () => {
      if (!released) this.used -= bytes;
      released = true;
    };
  }
}

function mib(bytes: number): string {
  return (bytes / MiB).toFixed(bytes < 10 * MiB ? 2 : 0);
}
