/**
 * Data in place: datasets stored as row blocks in depot allocations, described by exNodes with per-block
 * summaries; ingest; the seeded sensor-field simulator; loopback depots for examples, tests and benchmarks.
 */
export { DatasetError, DatasetErrorCode, type DatasetErrorCodeValue } from './errors.js';
export {
  SENSOR_FAULTS,
  MAX_SENSOR_FIELD_WIDTH,
  type ResolvedSensorFieldOptions,
  type SensorFault,
  type SensorFieldOptions,
} from './sensor-field-options.js';
export type { SensorSource, FaultySource, SensorFieldModel } from './sensor-field-generator.js';
export {
  simulateSensorField,
  describeSensorField,
  type SensorField,
  type SensorFieldTruth,
  type SensorFieldDescription,
  type SourceRows,
  type CleanStatistics,
} from './simulate-sensor-field.js';
export { streamSensorField, type SensorBatch, type SensorStreamOptions } from './stream-sensor-field.js';
export {
  startLoopbackDepots,
  DEFAULT_LOOPBACK_CAPACITY,
  type LoopbackDepots,
  type LoopbackDepotOptions,
} from './loopback-depots.js';
export {
  datasetFromExnode,
  openDataset,
  SCATTER_REFERENCE_META,
  bytesPerElement,
  type Dataset,
  type DatasetBlock,
  type DatasetReplica,
} from './dataset.js';
export { DEFAULT_BATCH_ROWS, FLOAT32_MAX, type RowBatch } from './row-batch.js';
export { parseCsvRows, MAX_CSV_LINE_CHARS, type CsvRowsOptions } from './csv-rows.js';
export { parseRawRows, type RawRowsOptions } from './raw-rows.js';
export {
  DEFAULT_BLOCK_ROWS,
  DEFAULT_ALLOCATION_BYTES,
  DEFAULT_INGEST_DURATION_SEC,
  DEFAULT_MAX_INFLIGHT_BLOCKS,
  type IngestOptions,
  type ResolvedIngestOptions,
} from './ingest-options.js';
export { DatasetWriter, REFERENCE_SCATTER_BLOCKS, type IngestStats, type IngestResult } from './dataset-writer.js';
export { ingest, sensorFieldBatches } from './ingest.js';
