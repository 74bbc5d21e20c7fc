/**
 * Anvil framework: the client side. The IBP client itself lives with the protocol in depot/ and is
 * re-exported here; exNodes, LoRS-style tools and the coordinator build on it.
 */
export {
  IbpClient,
  DEFAULT_CLIENT_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_MAX_IDLE_PER_DEPOT,
  DEFAULT_IDLE_CLOSE_MS,
  DEFAULT_EAGER_BODY_BYTES,
  parseInquiryV1,
  parseInquiryV0,
  ClientError,
  ClientErrorCode,
  type IbpClientOptions,
  type DepotAddress,
  type AllocateOptions,
  type AllocationCaps,
  type ProbeResult,
  type ChangeOptions,
  type DepotInquiry,
  type DepotInquiryV0,
  type ResourceInquiry,
} from '../depot/index.js';
export { main } from './cli/main.js';
