import type { Observable } from 'rxjs';
import type { Dataset, DatasetBlock, DatasetReplica } from './dataset-shape.js';

/** Kernel names the coordinator's jobs run (see nfu-kernels/register-all.ts). */
export type CoordinatorOpName =
  | 'column-stats'
  | 'gram'
  | 'atb'
  | 'gaussian-sketch-left'
  | 'sparse-sign-sketch'
  | 'count-sketch'
  | 'srht'
  // algorithms/ (runners that pass the op's extra inputs and allocation outputs)
  | 'affine-product'
  | 'affine-gram'
  | 'transpose-product'
  | 'fd-update';

/** The NFU op a job runs on every row block: kernel name, scalar attributes and its output size. */
export interface OpSpec {
  readonly name: CoordinatorOpName;
  /** Scalars beyond dtype/rows/cols/rowOffset (sketch size `k`, `seed`, `s`). */
  readonly attrs?: { readonly k?: number; readonly seed?: number; readonly s?: number };
  /** Output bytes of the op on one block. */
  outputBytes(dataset: Dataset, block: DatasetBlock): number;
}

/** One try of an op on one replica of a block. */
export interface OpAttempt {
  readonly dataset: Dataset;
  readonly block: DatasetBlock;
  readonly replica: DatasetReplica;
  readonly op: OpSpec;
  /** Time the op may take (ms); the runner must not keep a socket longer. */
  readonly timeoutMs: number;
}

/** A successful op: its output bytes and what crossed the network for it. */
export interface OpAnswer {
  readonly output: Uint8Array;
  /** Bytes on the wire (requests and replies, transfers included). */
  readonly wireBytes: number;
  /** Depot (`host:port`) that ran the op (differs from the replica's after a transfer). */
  readonly ranOn: string;
  /** True when the block was copied to another depot first (transfer, then transform). */
  readonly transferred: boolean;
}

/**
 * Runs ops for the coordinator. The engine talks to depots only through this interface, so tests can
 * drive it on virtual time with fake runners. `run` is cold: subscribing starts the op, unsubscribing
 * abandons it (the runner releases what it holds), an error is a failed attempt.
 */
export interface OpRunner {
  run(attempt: OpAttempt): Observable<OpAnswer>;
  /**
   * Optional promise form of {@link run}, which the engine prefers (no observable per op): resolves with the
   * answer or rejects with the attempt's failure. An attempt the engine abandons (timeout, hedge won,
   * cancellation) is simply ignored, so the runner must end its own work within `attempt.timeoutMs`.
   */
  execute?(attempt: OpAttempt): Promise<OpAnswer>;
  /**
   * Optional: whether a depot offers an op (its advertised NFU ops). The engine asks replicas on depots
   * that do first; unknown depots count as offering it.
   */
  offers?(depots: readonly DatasetReplica['depot'][], op: OpSpec['name']): Promise<ReadonlyMap<string, boolean>>;
}
