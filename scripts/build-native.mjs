// Builds the optional native NFU kernels (native/ → native/build/Release/anvil_nfu.node) with
// node-gyp against Node's own headers and, when installed, OpenBLAS (Debian: libopenblas-dev).
// Run by `npm ci` (prepare) and `npm run build:native`. A failed build is not an error: the depot
// then runs the WebAssembly/JS kernels and says so at start-up. ANVIL_NATIVE=0 skips the build;
// ANVIL_NATIVE=require makes a failed build fail the install (CI uses it to catch a broken addon).
// An addon already built from the same sources, for the same Node ABI and BLAS, is kept (a stamp
// beside it says what it was built from): `npx anvil` in a fresh clone installs the clone into npm's
// cache, which runs `prepare` again, and a rebuild there only made the first command wait.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'native');
const mode = process.env.ANVIL_NATIVE ?? 'auto';

if (mode === '0' || mode === 'off') {
  rmSync(join(dir, 'build'), { recursive: true, force: true });
  console.log('anvil: native kernels skipped (ANVIL_NATIVE=0); the WebAssembly kernels will be used');
  process.exit(0);
}

/** npm's own node-gyp (npm sets npm_config_node_gyp in scripts), else the one bundled beside npm. */
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((c) => c !== undefined && c !== '' && existsSync(c));
}

/** Node's headers: npm's nodedir setting, else the prefix of this node binary when it ships them. */
function nodeDir() {
  const configured = process.env.npm_config_nodedir;
  if (configured !== undefined && configured !== '') return configured;
  const prefix = resolve(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

function fail(why) {
  // Never leave an addon from older sources behind to be loaded instead.
  rmSync(join(dir, 'build'), { recursive: true, force: true });
  const msg = `anvil: native kernels not built (${why}); the WebAssembly kernels will be used`;
  if (mode === 'require') {
    console.error(msg);
    process.exit(1);
  }
  console.warn(msg);
  process.exit(0);
}

const addon = join(dir, 'build', 'Release', 'anvil_nfu.node');
const stampFile = join(dir, 'build', 'anvil-stamp');
const blasProbe = spawnSync('sh', [join(dir, 'detect-openblas.sh')], { encoding: 'utf8' }).stdout.trim();
const blasInclude = spawnSync('sh', [join(dir, 'detect-openblas.sh'), '--include'], { encoding: 'utf8' }).stdout.trim();
const stamp = createHash('sha256');
for (const f of ['anvil_nfu.cc', 'binding.gyp', 'detect-openblas.sh']) stamp.update(readFileSync(join(dir, f)));
stamp.update(
  JSON.stringify([process.versions.modules, process.versions.node, process.arch, process.platform, blasProbe, blasInclude]),
);
const wanted = stamp.digest('hex');
if (existsSync(addon) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === wanted) {
  console.log(`anvil: native kernels up to date (${blasProbe === '1' ? 'with OpenBLAS' : 'without BLAS'})`);
  process.exit(0);
}

const gyp = nodeGyp();
if (gyp === undefined) fail('node-gyp not found');
const args = [gyp, 'rebuild', '--directory', dir];
const nd = nodeDir();
if (nd !== undefined) args.push(`--nodedir=${nd}`);
const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
if (r.error !== undefined) fail(`node-gyp could not start: ${r.error.message}`);
if (r.status !== 0) {
  const lines = (r.stderr ?? '').split('\n').filter((l) => !l.startsWith('gyp info'));
  process.stderr.write(`${lines.slice(-20).join('\n')}\n`);
  fail(`node-gyp exited with ${r.status ?? r.signal}`);
}
writeFileSync(stampFile, wanted);
const blas = blasProbe === '1';
console.log(`anvil: native kernels built (${blas ? 'with OpenBLAS' : 'without BLAS: install libopenblas-dev for native GEMM'})`);
