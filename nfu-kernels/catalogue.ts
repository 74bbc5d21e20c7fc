/**
 * The catalogue of built-in NFU ops: the one place that assigns opcodes, names and RNG stream ids,
 * and says what each op takes and returns. Kernel files take their identity from here; the depot,
 * the client (`runKernel`) and docs/nfu-ops.md (checked against {@link renderOpsDoc} by a test) read it.
 * Pure data: importing it does nothing.
 */
import type { Dtype } from './attrs.js';

/**
 * RNG streams of the counter-based generator: every op that draws random numbers has streams of
 * its own, so the sketches of one seed never share random numbers. Never renumber (results change).
 */
export const Stream = {
  GAUSSIAN_RIGHT: 1,
  GAUSSIAN_LEFT: 2,
  SPARSE_SIGN: 3,
  COUNT_SKETCH: 4,
  SRHT_SIGNS: 5,
  SRHT_ROWS: 6,
} as const;

/** The attributes every matrix op takes: the block's element type and shape. */
export interface MatrixAttrs {
  /** Element type of the input blocks (default `float64`). */
  readonly dtype?: Dtype;
  /** Rows of the block (0 … 2³¹−1). */
  readonly rows: number;
  /** Columns of the block (1 … 2³¹−1). */
  readonly cols: number;
}
/** Seeded ops: the seed of the random matrix (0 … 2⁵³−1, default 0). */
interface Seeded {
  readonly seed?: number;
}
/** Ops additive over row blocks: the global index of the block's first row (default 0). */
interface RowPlaced {
  readonly rowOffset?: number;
}
/** Sketch size (1 … 2²⁰). */
interface Sized {
  readonly k: number;
}

/** The attribute type of each op, by name: what `runKernel` checks at compile time. */
export interface OpAttrTypes {
  readonly xor: undefined;
  readonly sha256: undefined;
  readonly 'gaussian-sketch-right': MatrixAttrs & Sized & Seeded;
  readonly 'gaussian-sketch-left': MatrixAttrs & Sized & Seeded & RowPlaced;
  readonly 'sparse-sign-sketch': MatrixAttrs & Sized & Seeded & RowPlaced & { readonly s?: number };
  readonly 'count-sketch': MatrixAttrs & Sized & Seeded & RowPlaced;
  readonly srht: MatrixAttrs & Sized & Seeded & RowPlaced & { readonly blockId?: number };
  readonly gram: MatrixAttrs;
  readonly 'column-stats': MatrixAttrs;
  readonly atb: MatrixAttrs & Sized;
  readonly 'affine-product': MatrixAttrs & Sized;
  readonly 'affine-gram': MatrixAttrs & Sized;
  readonly 'transpose-product': MatrixAttrs & Sized;
  readonly 'fd-update': MatrixAttrs & Sized & RowPlaced;
}

/** Name of a built-in op. */
export type OpName = keyof OpAttrTypes;
/** The attributes of op `N` (undefined for the byte ops, which take none). */
export type AttrsOf<N extends OpName> = OpAttrTypes[N];

/** Every attribute key of the wire format (docs: {@link ATTRIBUTE_DOCS}). */
export type AttrKey = 'dtype' | 'rows' | 'cols' | 'k' | 'seed' | 'rowOffset' | 's' | 'blockId';

/** One op of the catalogue. */
export interface OpSpec<N extends OpName = OpName> {
  readonly opcode: number;
  readonly name: N;
  /** One line, with the formula. */
  readonly summary: string;
  /** RNG streams the op draws from ({@link Stream}); none for deterministic ops. */
  readonly streams: readonly number[];
  /** The attributes the op reads (the wire accepts every {@link AttrKey}; others are ignored). */
  readonly attrs: readonly AttrKey[];
  /** Input slots in parameter order (after the attributes), each with its layout. */
  readonly inputs: ReadonlyArray<{ readonly name: string; readonly layout: string }>;
  /** The single output slot: its layout. */
  readonly output: string;
  /**
   * How the op splits over row ranges of its inputs: `concat` — output rows follow input rows;
   * `sum` — the outputs of row blocks add up (so do the outputs of depots holding the blocks).
   */
  readonly rowSplit?: 'concat' | 'sum';
}

const BLOCK = '`rows × cols` row-major, `dtype` elements, little-endian';
const MATRIX = ['dtype', 'rows', 'cols'] as const;

/** The built-in ops, by name. Opcodes and streams are unique (a test checks it). */
export const CATALOGUE: { readonly [N in OpName]: OpSpec<N> } = {
  xor: {
    opcode: 1,
    name: 'xor',
    summary: 'out[i] = p0[i] xor p1[i mod len(p1)] (LoCI semantics)',
    streams: [],
    attrs: [],
    inputs: [
      { name: 'p0', layout: 'bytes' },
      { name: 'p1', layout: 'bytes, the key, not empty (repeated over p0)' },
    ],
    output: 'len(p0) bytes; cut to the output parameter when it is shorter (as LoCI)',
  },
  sha256: {
    opcode: 16,
    name: 'sha256',
    summary: 'SHA-256 of the input range',
    streams: [],
    attrs: [],
    inputs: [{ name: 'data', layout: 'bytes' }],
    output: '32 bytes, the digest',
  },
  'gaussian-sketch-right': {
    opcode: 32,
    name: 'gaussian-sketch-right',
    summary: 'Y = A·Ω with Ω (`cols × k`) standard normal: Ω[j, t] is variate j·k + t of (seed, stream 1, block 0)',
    streams: [Stream.GAUSSIAN_RIGHT],
    attrs: [...MATRIX, 'k', 'seed'],
    inputs: [{ name: 'A', layout: BLOCK }],
    output: '`rows × k` float64 row-major; row blocks of A give the matching row blocks of Y',
    rowSplit: 'concat',
  },
  'gaussian-sketch-left': {
    opcode: 33,
    name: 'gaussian-sketch-left',
    summary: 'Z = Ωᵀ·A with Ω (`m × k`): row g of Ω is variates 0…k−1 of (seed, stream 2, block g), g = rowOffset + i',
    streams: [Stream.GAUSSIAN_LEFT],
    attrs: [...MATRIX, 'k', 'seed', 'rowOffset'],
    inputs: [{ name: 'A', layout: BLOCK }],
    output: '`k × cols` float64 row-major; additive over row blocks',
    rowSplit: 'sum',
  },
  'sparse-sign-sketch': {
    opcode: 34,
    name: 'sparse-sign-sketch',
    summary:
      'Z = S·A with S (`k × m`) a sparse sign embedding: global row g of A goes to min(s, k) distinct rows of Z with random signs, scaled by 1/√min(s, k)',
    streams: [Stream.SPARSE_SIGN],
    attrs: [...MATRIX, 'k', 'seed', 'rowOffset', 's'],
    inputs: [{ name: 'A', layout: BLOCK }],
    output: '`k × cols` float64 row-major; additive over row blocks',
    rowSplit: 'sum',
  },
  'count-sketch': {
    opcode: 35,
    name: 'count-sketch',
    summary: 'Z = S·A with S (`k × m`) one ±1 per column (CountSketch, the sparse sign embedding with s = 1)',
    streams: [Stream.COUNT_SKETCH],
    attrs: [...MATRIX, 'k', 'seed', 'rowOffset'],
    inputs: [{ name: 'A', layout: BLOCK }],
    output: '`k × cols` float64 row-major; additive over row blocks',
    rowSplit: 'sum',
  },
  srht: {
    opcode: 36,
    name: 'srht',
    summary:
      'Z = √(n/k)·R·H·D·A on the block zero-padded to n = 2^⌈log₂ rows⌉ rows: D signs per global row, H orthonormal Walsh–Hadamard, R k rows sampled by `blockId`',
    streams: [Stream.SRHT_SIGNS, Stream.SRHT_ROWS],
    attrs: [...MATRIX, 'k', 'seed', 'rowOffset', 'blockId'],
    inputs: [{ name: 'A', layout: BLOCK }],
    output: '`k × cols` float64 row-major (block-local: not additive); k ≤ n',
  },
  gram: {
    opcode: 48,
    name: 'gram',
    summary: 'G = AᵀA',
    streams: [],
    attrs: [...MATRIX],
    inputs: [{ name: 'A', layout: BLOCK }],
    output: '`cols × cols` float64 row-major, exactly symmetric; additive over row blocks',
    rowSplit: 'sum',
  },
  'column-stats': {
    opcode: 49,
    name: 'column-stats',
    summary: 'per-column statistics of the block, to be pooled across blocks (Chan et al.)',
    streams: [],
    attrs: [...MATRIX],
    inputs: [{ name: 'A', layout: BLOCK }],
    output:
      '`6 × cols` float64 row-major; row 0 count (= rows), 1 Σx, 2 Σx², 3 min, 4 max, 5 Σ(x − block mean)²; min and max are NaN when rows = 0',
  },
  atb: {
    opcode: 50,
    name: 'atb',
    summary: 'C = Aᵀ·B for a supplied B (power iterations)',
    streams: [],
    attrs: [...MATRIX, 'k'],
    inputs: [
      { name: 'A', layout: BLOCK },
      { name: 'B', layout: '`rows × k` row-major, the same `dtype` as A (the second input parameter)' },
    ],
    output: '`cols × k` float64 row-major; additive over row blocks',
    rowSplit: 'sum',
  },
  'affine-product': {
    opcode: 51,
    name: 'affine-product',
    summary:
      'Y = A·W + 1·bᵀ for a supplied X = [W; bᵀ] (the tall factor of randomized SVD, kept at the depot; b centres the block)',
    streams: [],
    attrs: [...MATRIX, 'k'],
    inputs: [
      { name: 'A', layout: BLOCK },
      { name: 'X', layout: '`(cols + 1) × k` float64 row-major: W, then the row bᵀ' },
    ],
    output: '`rows × k` float64 row-major; row blocks of A give the matching row blocks of Y',
  },
  'affine-gram': {
    opcode: 52,
    name: 'affine-gram',
    summary: 'G = YᵀY for Y = A·W + 1·bᵀ, Y not stored (CholeskyQR, residual norms of probes against a subspace)',
    streams: [],
    attrs: [...MATRIX, 'k'],
    inputs: [
      { name: 'A', layout: BLOCK },
      { name: 'X', layout: '`(cols + 1) × k` float64 row-major: W, then the row bᵀ' },
    ],
    output: '`k × k` float64 row-major, exactly symmetric; additive over row blocks',
  },
  'transpose-product': {
    opcode: 53,
    name: 'transpose-product',
    summary: 'C = [Aᵀ·Y; 1ᵀY] for Y read from an allocation (power iterations, Aᵀ·residual)',
    streams: [],
    attrs: [...MATRIX, 'k'],
    inputs: [
      { name: 'A', layout: BLOCK },
      { name: 'Y', layout: '`rows × k` float64 row-major (e.g. an `affine-product` output)' },
    ],
    output: '`(cols + 1) × k` float64 row-major: AᵀY, then the column sums of Y; additive over row blocks',
  },
  'fd-update': {
    opcode: 54,
    name: 'fd-update',
    summary:
      'Frequent Directions: the ℓ = k row sketch B of the rows seen, updated with the block’s rows from row `rows seen` on (idempotent: rows already absorbed are skipped); ‖AᵀA − BᵀB‖₂ ≤ Δ ≤ ‖A − A_j‖_F²/(ℓ − j)',
    streams: [],
    attrs: [...MATRIX, 'k', 'rowOffset'],
    inputs: [
      {
        name: 'S',
        layout:
          'the state, `4 + k·cols` float64: ℓ, cols, rows seen (end of the absorbed row range), Δ, then B (`k × cols`); empty for a new sketch (starting at `rowOffset`)',
      },
      { name: 'A', layout: BLOCK },
    ],
    output: 'the new state, `4 + k·cols` float64 (written back in place of S)',
  },
};

/** Every op, by opcode. */
export const OPS: readonly OpSpec[] = Object.values(CATALOGUE).sort((a, b) => a.opcode - b.opcode);

/** The op spec for `name`, or undefined. */
export function opSpec(name: string): OpSpec | undefined {
  return Object.hasOwn(CATALOGUE, name) ? CATALOGUE[name as OpName] : undefined;
}

/** The attributes of the wire format: range, default and meaning. */
export const ATTRIBUTE_DOCS: ReadonlyArray<readonly [AttrKey, string, string, string]> = [
  ['dtype', '`"float64"` or `"float32"`', '`"float64"`', 'element type of the input blocks; results are float64'],
  ['rows', '0 … 2³¹−1', 'required', 'rows of the block held in this call'],
  ['cols', '1 … 2³¹−1', 'required', 'columns of the block'],
  [
    'k',
    '1 … 2²⁰',
    '1',
    'sketch size (rows of Z, columns of Y), columns of B for `atb` and of X, Y for the products, ℓ for `fd-update`',
  ],
  ['seed', '0 … 2⁵³−1', '0', 'seed of the random matrix; the same seed gives the same matrix on every depot and backend'],
  [
    'rowOffset',
    '0 … 2⁵³−1, rowOffset + rows ≤ 2⁵³−1',
    '0',
    'global index of the block’s first row, so blocks at different depots compose (`fd-update`: the source row of A’s first row; rows before the state’s `rows seen` are skipped, a gap is refused)',
  ],
  ['s', '1 … 64', '8', 'non-zeros per row of A for `sparse-sign-sketch` (capped at k)'],
  ['blockId', '0 … 2³²−1', '0', 'identifies the block for `srht`’s row sample'],
];

/** A depot's answers to a built-in op besides success (docs/errors.md has the error codes). */
export const OP_ANSWERS: ReadonlyArray<readonly [string, string]> = [
  [
    '`-30`',
    'bad attributes (the message names the field and its range), an input whose size does not match the shape, the wrong number of inputs',
  ],
  [
    '`-19`',
    'the output parameter is smaller than the output; or the op needs more memory (inputs, output and scratch such as Ω = cols·k·8 bytes) than the whole `nfu.memoryBudgetMb`: it could never run',
  ],
  [
    '`-66 <retry>`',
    'the op does not fit beside the ops already admitted (`nfu.memoryBudgetMb`), `nfu.workers + nfu.maxQueue` ops are admitted, or no worker started it within `nfu.queueTimeoutMs`: retry after the given seconds',
  ],
  ['`-46`', 'the op ran past `nfu.timeoutMs`; nothing was written'],
  ['`-24`', 'a worker crashed or ran out of its heap (`nfu.memoryMb`); not expected for attributes inside the ranges above'],
];

/** docs/nfu-ops.md, generated from the catalogue (test/nfu-kernels/catalogue.test.ts keeps them equal). */
export function renderOpsDoc(limits: ReadonlyArray<readonly [string, string]> = OP_ANSWERS): string {
  const lines: string[] = [
    '# NFU ops',
    '',
    '<!-- Generated from nfu-kernels/catalogue.ts: edit the catalogue, then run',
    '     `ANVIL_WRITE_DOCS=1 npx vitest run test/nfu-kernels/catalogue.test.ts`. -->',
    '',
    'The built-in ops a depot serves on the NFU command (12). A call passes, in order: the attributes',
    '(one VAL_IN JSON object, for every op but `xor` and `sha256`), the inputs (REF_RD caps or VAL_IN',
    'bytes), and last the output parameter (REF_WR, REF_RDWR, VAL_OUT or VAL_INOUT). Random matrices',
    'are regenerated from `(seed, stream, block)` by Philox-4×32 and Box–Muller: every depot and every',
    'kernel backend (native or WebAssembly) draws the same bits.',
    '',
    '| opcode | name | inputs | output | attributes | RNG streams |',
    '|---|---|---|---|---|---|',
  ];
  for (const op of OPS) {
    lines.push(
      `| ${op.opcode} | \`${op.name}\` | ${op.inputs.map((i) => i.name).join(', ')} | ${op.output.split(';')[0]} | ${op.attrs.length === 0 ? '—' : op.attrs.map((a) => `\`${a}\``).join(', ')} | ${op.streams.length === 0 ? '—' : op.streams.join(', ')} |`,
    );
  }
  lines.push(
    '',
    '## Attributes',
    '',
    'A JSON object of at most 4096 bytes. Unknown keys are refused (`-30`); keys an op does not read are ignored.',
    '',
  );
  lines.push('| key | range | default | meaning |', '|---|---|---|---|');
  for (const [key, range, def, meaning] of ATTRIBUTE_DOCS) lines.push(`| \`${key}\` | ${range} | ${def} | ${meaning} |`);
  if (limits.length > 0) {
    lines.push('', '## Answers besides success', '', '| answer | when |', '|---|---|');
    for (const [answer, when] of limits) lines.push(`| ${answer} | ${when} |`);
  }
  for (const op of OPS) {
    lines.push('', `## ${op.opcode} \`${op.name}\``, '', `${op.summary}.`, '');
    lines.push(
      `- Attributes: ${op.attrs.length === 0 ? 'none (no attribute parameter)' : op.attrs.map((a) => `\`${a}\``).join(', ')}`,
    );
    op.inputs.forEach((input, i) => lines.push(`- Input ${i} \`${input.name}\`: ${input.layout}`));
    lines.push(`- Output: ${op.output}`);
    if (op.streams.length > 0) lines.push(`- RNG streams: ${op.streams.join(', ')}`);
    if (op.rowSplit !== undefined)
      lines.push(`- Row split: ${op.rowSplit === 'sum' ? 'the outputs of row blocks add up' : 'output rows follow input rows'}`);
  }
  return `${lines.join('\n')}\n`;
}
