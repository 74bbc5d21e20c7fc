/** How an allocation's bytes are stored and streamed: the interfaces resources implement. */

/** Checksums to record with a write: block index → CRC-32C of the block's committed bytes. */
export type BlockChecksums = ReadonlyMap<number, number>;

/** Receives the body of one STORE/WRITE straight into the allocation's storage. */
export interface RangeWriter {
  /** Stores the next chunk; chunks arrive in order and never exceed the declared length. */
  write(chunk: Buffer): void | Promise<void>;
  /**
   * Makes the bytes durable under the resource's policy (flush, fsync) and returns what must be
   * recorded with the new size. Nothing is visible to readers until the core commits.
   */
  finish(newSize: number): Promise<BlockChecksums | undefined>;
  /** Abandons the range: bytes past the committed size are discarded. */
  abort(): Promise<void>;
}

/** How a reader's sink treats the chunks it is given. */
export interface ReadOptions {
  /**
   * The sink's promise resolves only once it holds no reference to the chunk (a socket has taken
   * the bytes): the store may then reuse the chunk's memory for the next read.
   */
  readonly sinkReleases?: boolean;
}

/** Where an allocation's bytes live: RAM or a file. */
export interface AllocationData {
  /** Bytes of RAM or disk currently used by the data. */
  readonly residentBytes: number;
  openWriter(offset: number, length: number): Promise<RangeWriter>;
  /**
   * Streams `[offset, offset + length)` to `sink` in order, verifying stored checksums where the
   * resource keeps them. The caller has checked the range against the committed size.
   */
  read(offset: number, length: number, sink: (chunk: Buffer) => void | Promise<void>, options?: ReadOptions): Promise<void>;
  /**
   * Cuts the data to `newSize` bytes under a new max size; what is cut never reappears. A
   * persistent store records the new sizes before it cuts the bytes.
   */
  truncate(newSize: number, newMaxSize: number): Promise<void>;
  /** Frees the bytes for good. */
  release(): Promise<void>;
}
