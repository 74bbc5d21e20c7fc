/**
 * Anvil's numeric kernels: pure functions on typed arrays (no I/O) that depots run as NFU ops,
 * the counter-based RNG that lets every depot regenerate the same random matrices, and the
 * kernel registry.
 */
export {
  philox4x32,
  normals,
  normalRows,
  normalsReference,
  words,
  seedKey,
  uniform53,
  lnPoly,
  sinCosTurn,
} from './rng/philox.js';
export type { NativeKernels, FloatArray } from './native.js';
export { WASM_BACKEND, nativeBackend, type KernelBackend, type RunOptions } from './backend.js';
export { matrix, subMatrix, asMatrix, type Matrix } from './matrix.js';
export {
  CATALOGUE,
  OPS,
  Stream,
  opSpec,
  renderOpsDoc,
  ATTRIBUTE_DOCS,
  type OpName,
  type OpSpec,
  type AttrsOf,
  type AttrKey,
  type MatrixAttrs,
} from './catalogue.js';
export { parseAttrs, encodeAttrs, matrixView, bytesPer, f64Bytes, MAX_ATTRS_BYTES, type Attrs, type Dtype } from './attrs.js';
export { KernelError, KernelErrorCode, type KernelErrorCodeValue } from './errors.js';
export type { KernelConfig } from './kernel.js';
export { KernelRegistry, type RegisteredOp, type BuiltinOp, type UploadedOp } from './registry.js';
export { BUILTIN_KERNELS, builtinRegistry, builtins } from './register-all.js';
export {
  gaussianSketchRight,
  gaussianSketchLeft,
  rightOmega,
  STREAM_GAUSSIAN_LEFT,
  STREAM_GAUSSIAN_RIGHT,
} from './sketch/gaussian-sketch.js';
export { sparseSignSketch, STREAM_SPARSE_SIGN, STREAM_COUNT_SKETCH } from './sketch/sparse-sign-sketch.js';
export { srht, fwhtColumns, STREAM_SRHT_SIGNS, STREAM_SRHT_ROWS } from './sketch/srht.js';
export { gram, columnStats, atb } from './reduce/reductions.js';
export { xorBytes } from './bytes/byte-ops.js';
export { affineProduct, affineGram, transposeProduct } from './linalg/products.js';
export { fdUpdate, fdShrink, fdStateLength, jacobiEigen } from './linalg/frequent-directions.js';
