/** Anvil framework: the client side (IBP client today; exNodes, tools and the coordinator later). */
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
  type ProbeResult,
  type ChangeOptions,
} from './ibp/ibp-client.js';
export { parseInquiryV1, parseInquiryV0, type DepotInquiry, type DepotInquiryV0, type ResourceInquiry } from './ibp/inquiry.js';
export { ClientError, ClientErrorCode } from './errors.js';
export { main } from './cli/main.js';
