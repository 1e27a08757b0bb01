// The CPU-only node-gyp build (binding.gyp), done in a scratch copy (build-gyp/) so it never touches the
// cmake-js build in build/. CI builds it and runs the CPU test suite against it, so binding.gyp cannot rot.
// Output: build-gyp/build/Release/sparse_kernels.node (use it with SPARSE_KERNELS_BINARY=...).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const work = path.join(root, 'build-gyp');
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
for (const entry of ['src', 'binding.gyp', 'package.json', 'scripts/list-sources.cjs']) {
  fs.cpSync(path.join(root, entry), path.join(work, entry), { recursive: true });
}
fs.symlinkSync(path.join(root, 'node_modules'), path.join(work, 'node_modules'), 'dir');
const jobs = String(Math.max(1, Math.min(4, (await import('node:os')).availableParallelism())));
// npm runs scripts with its bundled node-gyp on PATH; fall back to `npm exec` otherwise.
const cmd = process.env.npm_config_node_gyp
  ? [process.execPath, [process.env.npm_config_node_gyp, 'rebuild', '-j', jobs]]
  : ['npm', ['exec', '--yes', '--', 'node-gyp', 'rebuild', '-j', jobs]];
// Offline: the npm config's nodedir, else the running Node's own headers (node-gyp would download them).
const prefix = path.resolve(process.execPath, '..', '..');
if (!process.env.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) cmd[1].push(`--nodedir=${prefix}`);
execFileSync(cmd[0], cmd[1], { cwd: work, stdio: 'inherit' });
console.log(`built ${path.join(work, 'build', 'Release', 'sparse_kernels.node')}`);
