// The tarball test (CI): `npm pack`, install the tarball into a temporary project with no network and
// no compiler, nvcc or cmake on PATH, then check ESM import, CJS require, the TypeScript types and the
// CPU fallback. With --source-build it also shows the CPU-only build from source (node-gyp) that a user
// can force: the built binary then takes precedence over the prebuilt one.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const sourceBuild = process.argv.includes('--source-build');
const log = (m) => console.log(`[pack-test] ${m}`);

if (!fs.existsSync(path.join(root, 'prebuilds'))) {
  console.error('no prebuilds/: run `npm run prebuild` first');
  process.exit(1);
}
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sk-pack-'));
const packOut = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: root, encoding: 'utf8' });
const packInfo = JSON.parse(packOut)[0];
const tgz = path.join(work, packInfo.filename);
const tgzBytes = fs.statSync(tgz).size;
log(`tarball ${packInfo.filename}: ${(tgzBytes / 2 ** 20).toFixed(1)} MiB packed, ${(packInfo.unpackedSize / 2 ** 20).toFixed(1)} MiB unpacked, ${packInfo.entryCount} files`);
const hasScripts = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).scripts ?? {};
for (const s of ['install', 'preinstall', 'postinstall']) {
  if (hasScripts[s]) throw new Error(`package.json must not have an ${s} script`);
}
if (!packInfo.files.some((f) => f.path.startsWith('prebuilds/'))) throw new Error('the tarball has no prebuilds/');
if (tgzBytes > 100 * 2 ** 20) throw new Error('the tarball is over 100 MiB: split the CUDA binary into a platform package');

// A PATH with node and npm only: no c++, no nvcc, no cmake, no make, no python.
const bin = path.join(work, 'bin');
fs.mkdirSync(bin);
fs.symlinkSync(process.execPath, path.join(bin, 'node'));
const npmCli = process.env.npm_execpath ?? fs.realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
fs.writeFileSync(path.join(bin, 'npm'), `#!/bin/sh\nexec "${process.execPath}" "${npmCli}" "$@"\n`, { mode: 0o755 });
const env = {
  HOME: process.env.HOME,
  PATH: bin,
  npm_config_cache: process.env.npm_config_cache ?? path.join(os.homedir(), '.npm'),
  npm_config_offline: 'true',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
  SPARSE_KERNELS_LOG: 'silent',
};
for (const tool of ['c++', 'g++', 'gcc', 'cc', 'nvcc', 'cmake', 'make', 'python3']) {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { env, stdio: 'pipe' });
    throw new Error(`${tool} is reachable in the restricted PATH`);
  } catch (e) {
    if (e instanceof Error && e.message.includes('reachable')) throw e;
  }
}
// The install below is offline, so npm may only use its cache; `npm ci` of the repo caches the locked tarballs
// but not the registry metadata (packuments) that resolving the tarball's dependency ranges needs, and a clean
// CI machine has nothing else cached. So one online install of the same tarball (and of node-addon-api for the
// source build) in a throwaway project fills the cache first; the offline installs then prove that installing
// the package fetches nothing beyond its npm dependencies and compiles nothing.
const warm = path.join(work, 'warm');
fs.mkdirSync(warm);
fs.writeFileSync(path.join(warm, 'package.json'), JSON.stringify({ name: 'warm', version: '1.0.0', private: true }));
execFileSync(process.execPath, [npmCli, 'install', '--no-save', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', tgz, 'node-addon-api@^8'], {
  cwd: warm,
  env: { ...process.env, npm_config_cache: env.npm_config_cache, npm_config_update_notifier: 'false' },
  stdio: 'inherit',
});
fs.rmSync(warm, { recursive: true, force: true });
log('npm cache warmed with the tarball\'s dependencies (online); the installs below are offline');

const proj = path.join(work, 'app');
fs.mkdirSync(proj);
fs.writeFileSync(path.join(proj, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
const t0 = Date.now();
execFileSync('npm', ['install', '--no-save', tgz], { cwd: proj, env, stdio: 'inherit' });
log(`installed offline without a compiler in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

const run = (file, src, extraEnv = {}) => {
  fs.writeFileSync(path.join(proj, file), src);
  return execFileSync('node', [file], { cwd: proj, env: { ...env, ...extraEnv }, encoding: 'utf8' }).trim();
};
const check = `
  const t = sk.Tensor.from([1.5, -2, 3], [3], { dtype: 'bfloat16' });
  const info = sk.backendInfo();
  const out = { backend: info.backend, reasonCode: info.reasonCode ?? null, binary: info.binaryPath.includes('prebuilds') ? 'prebuild' : info.binaryPath,
                meta: info.buildMetadata ? info.buildMetadata.architectures : null };
  t.toFloat32Array().then((a) => console.log(JSON.stringify({ ...out, data: Array.from(a) })));`;
const esm = JSON.parse(run('esm.mjs', `import * as sk from 'sparse-kernels';\n${check}`));
const cjs = JSON.parse(run('cjs.cjs', `const sk = require('sparse-kernels');\n${check}`));
log(`ESM: ${JSON.stringify(esm)}`);
log(`CJS: ${JSON.stringify(cjs)}`);
for (const r of [esm, cjs]) {
  if (r.binary !== 'prebuild') throw new Error(`expected the prebuilt binary, got ${r.binary}`);
  if (JSON.stringify(r.data) !== '[1.5,-2,3]') throw new Error('wrong data');
}
// On a machine without a GPU the prebuilt CUDA binary must fall back to the CPU and say why.
if (esm.backend === 'cpu' && !['no-driver', 'no-device', 'built-without-cuda'].includes(esm.reasonCode)) {
  throw new Error(`unexpected fallback reason ${esm.reasonCode}`);
}

// Types: compile a consumer in both module modes with the repo's TypeScript.
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
fs.writeFileSync(
  path.join(proj, 'use.mts'),
  `import { Tensor, Context, type DType, backendInfo } from 'sparse-kernels';\n` +
    `const d: DType = 'float16';\nconst t: Tensor = Tensor.zeros([2, 2], { dtype: d });\n` +
    `const c: Context = t.context;\nconst a: Promise<Uint16Array | Float32Array | Int32Array | Int8Array | Uint8Array> = t.toArray();\n` +
    `void c; void a; void backendInfo().backend;\n// @ts-expect-error dims must be numbers\nTensor.zeros(['x']);\n`,
);
fs.writeFileSync(path.join(proj, 'use.cts'), `import sk = require('sparse-kernels');\nconst t: sk.Tensor = sk.Tensor.zeros([1]);\nvoid t;\n`);
for (const file of ['use.mts', 'use.cts']) {
  execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--lib', 'es2022,esnext.disposable', '--types', 'node', '--typeRoots', path.join(root, 'node_modules', '@types'), file], {
    cwd: proj,
    stdio: 'inherit',
  });
}
log('types: ESM and CJS consumers type-check');

/**
 * node-gyp's --nodedir for an offline build: the npm config's, else the running Node's own headers
 * (<prefix>/include/node, shipped by Node's installers), so node-gyp does not try to download them.
 */
function localNodedir() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = path.resolve(process.execPath, '..', '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

if (sourceBuild) {
  // A user forcing a CPU-only build from source (README: node-addon-api, then `node-gyp rebuild` in the package
  // folder), still offline, now with the compiler on PATH. The tarball and node-addon-api go in one install:
  // installing node-addon-api alone would prune the tarball's --no-save install.
  const pkgDir = path.join(proj, 'node_modules', 'sparse-kernels');
  const fullEnv = { ...process.env, npm_config_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false' };
  execFileSync(process.execPath, [npmCli, 'install', '--no-save', tgz, 'node-addon-api@^8'], { cwd: proj, env: fullEnv, stdio: 'inherit' });
  // npm's own node-gyp (npm runs install scripts with it): `npm exec node-gyp` would need the network here.
  const gyp = process.env.npm_config_node_gyp ?? path.join(path.dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (!fs.existsSync(gyp)) throw new Error(`node-gyp not found at ${gyp} (set npm_config_node_gyp)`);
  const t1 = Date.now();
  const jobs = String(Math.max(1, Math.min(4, os.availableParallelism())));
  execFileSync(process.execPath, [gyp, 'rebuild', '-j', jobs, ...localNodedir()], { cwd: pkgDir, env: fullEnv, stdio: 'inherit' });
  log(`source build (node-gyp, CPU only) in ${((Date.now() - t1) / 1000).toFixed(0)} s`);
  const src = JSON.parse(run('src.cjs', `const sk = require('sparse-kernels');\n${check}`));
  log(`source build: ${JSON.stringify(src)}`);
  if (!src.binary.endsWith(path.join('build', 'Release', 'sparse_kernels.node'))) throw new Error('the source build was not picked up');
  if (src.reasonCode !== 'built-without-cuda') throw new Error('the node-gyp build must be CPU-only');
}
fs.rmSync(work, { recursive: true, force: true });
log('ok');
