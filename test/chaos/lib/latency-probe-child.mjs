// A well-behaved client in a process of its own (started by latency-probe.ts): sequential 4 KiB LOADs of
// one allocation, so its latency is not measured on the event loop the abusers run on. Commands on stdin,
// one a line: `run N` measures up to N LOADs (or until `stop`) and prints `{"lat":[ms, …]}`; the process
// ends when stdin closes. Runs the built client (dist/), as the depots do.
import { createInterface } from 'node:readline';
import { IbpClient, parseCapability } from '../../../dist/ibp/index.js';

const [host, port, readCap] = process.argv.slice(2);
const cap = { ...parseCapability(readCap), host, port: Number(port) };
const client = new IbpClient({ timeoutMs: 5_000 });
let stopping = false;
let running = Promise.resolve();

async function measure(max) {
  const lat = [];
  stopping = false;
  while (!stopping && lat.length < max) {
    const t0 = process.hrtime.bigint();
    await client.load(cap, 0, 4096).catch(() => undefined);
    lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  process.stdout.write(`${JSON.stringify({ lat })}\n`);
}

createInterface({ input: process.stdin })
  .on('line', (line) => {
    const [cmd, arg] = line.trim().split(' ');
    if (cmd === 'run') running = running.then(() => measure(Math.max(1, Math.min(Number(arg) || 1, 1_000_000))));
    else if (cmd === 'stop') stopping = true;
  })
  .on('close', () => {
    stopping = true;
    void running.finally(() => {
      client.close();
      process.exit(0);
    });
  });
