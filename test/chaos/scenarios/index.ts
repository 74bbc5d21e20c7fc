import type { Scenario } from '../lib/scenario.js';
import { capForgery } from './cap-forgery.js';
import { coordinatorFaults } from './coordinator-faults.js';
import { diskFaults } from './disk-faults.js';
import { multiHost } from './multi-host.js';
import { nfuAbuse } from './nfu-abuse.js';
import { processFaults } from './process-faults.js';
import { protocolAbuse } from './protocol-abuse.js';
import { proxyFaults } from './proxy-faults.js';
import { transferPeers } from './transfer-peers.js';

/** Every scenario, in run order (the order is part of the seed's replay). */
export const SCENARIOS: readonly Scenario[] = [
  processFaults,
  proxyFaults,
  diskFaults,
  protocolAbuse,
  capForgery,
  nfuAbuse,
  transferPeers,
  coordinatorFaults,
  multiHost,
];
