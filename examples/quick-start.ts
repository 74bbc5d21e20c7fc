// The README's pipeline: ingest a simulated sensor field into loopback depots, then estimate its covariance
// where the data sits, with an (ε, δ) bound. Run: npm run build && node dist/examples/quick-start.js
import { lastValueFrom } from 'rxjs';
import { Coordinator, covarianceJob, startLoopbackDepots, ingest, simulateSensorField, IbpClient } from '../framework/index.js';

const depots = await startLoopbackDepots(3); // or your own depots' addresses
const client = new IbpClient();
const field = simulateSensorField({ seed: 7, channels: 8 }); // or rows from your sensors
const { dataset } = await ingest(client, field.rows, { name: 'field', cols: 8, depots: depots.depots, copies: 2 });

const coordinator = await Coordinator.open({ reliabilityPath: null, client });
const estimate = await lastValueFrom(coordinator.run(covarianceJob(dataset)));
console.log(estimate.value, `±${estimate.epsilon} (spectral) with probability ≥ ${1 - estimate.delta}`, estimate.coverage);
await coordinator.close();
client.close();
await depots.stop();
