/**
 * What both sides of the IBP wire speak: command numbers, status codes, capabilities, typed requests,
 * the line codec (parse and format), NFU parameter framing, reply formats and parsers, and the
 * {@link IbpClient}. Imports nothing from the depot server: a light client or a browser bundle (types)
 * can use it without pulling in storage, logging or worker threads.
 *
 * Errors: the codec throws {@link IbpProtocolError} (codes `IBP_ERR_*`), the client rejects with
 * {@link ClientError} (codes `CLIENT_ERR_*`); both are listed in docs/errors.md.
 */
export {
  Command,
  ManageOp,
  StatusOp,
  Status,
  Reliability,
  AllocationType,
  CapType,
  CAP_TYPE_WORD,
  CHKSUM_BASE_COMMAND,
  ChksumType,
  MAX_IOVEC,
  IBP_V0,
  IBP_V1,
  IBP_DEFAULT_PORT,
  DEFAULT_STATUS_PASSWORD,
  statusName,
  type CommandNumber,
  type CapTypeNumber,
  type StatusCode,
} from './protocol/commands.js';
export { parseCapability, formatCapability, capTokens, MAX_CAP_LENGTH, type Capability } from './protocol/caps.js';
export { parseRequest, tokenize, MAX_NFU_PARAMS, DEFAULT_REQUEST_TIMEOUT_SEC } from './protocol/parse.js';
export {
  parseNfuParamHeader,
  formatNfuParamHeader,
  encodeNfuParam,
  readNfuParams,
  isNfuRefKind,
  type NfuParamHeader,
  type NfuFramingLimits,
} from './protocol/nfu-framing.js';
export {
  formatRequest,
  formatAllocate,
  formatStore,
  formatWrite,
  formatLoad,
  formatManage,
  formatStatus,
  formatSend,
  formatPush,
  formatPull,
  formatNfu,
  formatAccre,
  keyRefOf,
  MAX_TIMEOUT_SEC,
  type RequestFields,
} from './protocol/format.js';
export {
  NfuParamKind,
  type NfuParamKindNumber,
  type IbpRequest,
  type KeyRef,
  type AllocateRequest,
  type StoreRequest,
  type WriteRequest,
  type LoadRequest,
  type ManageRequest,
  type StatusRequest,
  type TransferRequest,
  type NfuRequest,
  type NfuParam,
  type AccreRequest,
  type AliasAllocateRequest,
  type AliasManageRequest,
  type RenameRequest,
  type SplitRequest,
  type MergeRequest,
  type ChksumRequest,
  type VecRequest,
  type IoRange,
} from './protocol/requests.js';
export {
  OK_REPLY,
  errorReply,
  allocateReply,
  countReply,
  probeReply,
  aliasProbeReply,
  resourcesReply,
  versionReply,
  inquiryBodyV1,
  inquiryBodyV0,
  type ProbeFields,
  type ResourceStatus,
} from './protocol/reply.js';
export { ByteQueue, LINE_TOO_LONG } from './protocol/byte-queue.js';
export {
  StreamReader,
  ReadError,
  isDirectTarget,
  type DirectReadConsumer,
  type DirectReadSource,
  type DirectTarget,
  type ReadFailure,
  type StreamReaderOptions,
} from './protocol/stream-reader.js';
export { IbpProtocolError, IbpProtocolErrorCode, type IbpProtocolErrorCodeValue } from './errors.js';
export {
  IbpClient,
  DEFAULT_CLIENT_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_MAX_IDLE_PER_DEPOT,
  DEFAULT_IDLE_CLOSE_MS,
  DEFAULT_EAGER_BODY_BYTES,
  type IbpClientOptions,
  type DepotAddress,
  type AllocateOptions,
  type AllocationCaps,
  type AliasProbe,
  type ProbeResult,
  type ChangeOptions,
  type NfuParamSpec,
  type BodySource,
  type TransferOptions as ClientTransferOptions,
} from './client/ibp-client.js';
export {
  parseInquiryV1,
  parseInquiryV0,
  type DepotInquiry,
  type DepotInquiryV0,
  type ResourceInquiry,
} from './client/inquiry.js';
export { ClientError, ClientErrorCode, type ClientErrorOptions } from './client/client-error.js';
