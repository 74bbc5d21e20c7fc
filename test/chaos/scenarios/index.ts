import type { Scenario } from '../lib/scenario.js';
import { processFaults } from './process-faults.js';

/** Every scenario, in run order (the order is part of the seed's replay). */
export const SCENARIOS: readonly Scenario[] = [processFaults];
