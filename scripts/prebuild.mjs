// npm run prebuild: builds the release binary (CUDA kernels for sm_80/86/89/90 + compute_90 PTX, static
// cudart, so it loads and falls back to the CPU on machines without a GPU or driver) and places it where
// node-gyp-build finds it: prebuilds/linux-x64/sparse-kernels.napi.glibc.node, with the build metadata
// (commit, CUDA version, architectures, N-API version) in sparse-kernels.json beside it, which
// backendInfo().buildMetadata reports.
//   --no-build   package the binary already in build/Release (it must be a full-architecture CUDA build)
import { execFileSync, execSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const DEFAULT_ARCHS = '80-real;86-real;89-real;90-real;90-virtual';
const noBuild = process.argv.includes('--no-build');

function sh(cmd) {
  try {
    return execSync(cmd, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

const t0 = Date.now();
if (!noBuild) {
  const cmakeJs = path.join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
  execFileSync(process.execPath, [cmakeJs, 'compile', '-O', 'build', '--CDSPARSE_KERNELS_CUDA=ON', `--CDSPARSE_KERNELS_CUDA_ARCHS=`], {
    cwd: root,
    stdio: 'inherit',
  });
}
const buildSeconds = (Date.now() - t0) / 1000;

const cache = fs.readFileSync(path.join(root, 'build', 'CMakeCache.txt'), 'utf8');
const cacheVar = (name) => cache.match(new RegExp(`^${name}:[A-Z]+=(.*)$`, 'm'))?.[1] ?? '';
const archs = cacheVar('SK_EFFECTIVE_CUDA_ARCHS');
const cudaCompiler = cacheVar('CMAKE_CUDA_COMPILER');
if (!cudaCompiler || archs !== DEFAULT_ARCHS) {
  console.error(`build/ is not a full CUDA release build (CUDA compiler: ${cudaCompiler || 'none'}, architectures: ${archs}).`);
  console.error('Run `npm run prebuild` without --no-build.');
  process.exit(1);
}
const nvccVersion = sh(`"${cudaCompiler}" --version`).match(/release ([0-9.]+)/)?.[1] ?? 'unknown';

const src = path.join(root, 'build', 'Release', 'sparse_kernels.node');
const outDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
fs.rmSync(outDir, { recursive: true, force: true });
fs.mkdirSync(outDir, { recursive: true });
const dst = path.join(outDir, 'sparse-kernels.napi.glibc.node');
fs.copyFileSync(src, dst);
// Symbols are not needed at run time; stripping keeps the tarball small.
sh(`strip --strip-unneeded "${dst}"`);
const bytes = fs.statSync(dst).size;
const commit = sh('git rev-parse HEAD');
const dirty = sh('git status --porcelain --untracked-files=no') !== '';
const metadata = {
  package: JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version,
  commit: dirty ? `${commit}-dirty` : commit,
  builtAt: new Date().toISOString(),
  platform: `${process.platform}-${process.arch}`,
  libc: 'glibc',
  cudaVersion: nvccVersion,
  cudaRuntime: 'static',
  architectures: archs,
  napiVersion: 9,
  builtWith: { node: process.version, compiler: sh('c++ --version').split('\n')[0] },
  bytes,
  sha256: createHash('sha256').update(fs.readFileSync(dst)).digest('hex'),
  buildSeconds: noBuild ? undefined : buildSeconds,
};
fs.writeFileSync(path.join(outDir, 'sparse-kernels.json'), `${JSON.stringify(metadata, null, 2)}\n`);
console.log(`prebuilt ${path.relative(root, dst)} (${(bytes / 2 ** 20).toFixed(1)} MiB, CUDA ${nvccVersion}, ${archs})`);
