// Builds the dual package from one set of sources (tshy-style dialect switching, without the tool):
//   dist/esm  - ES modules (tsc, module NodeNext); native/dialect.js replaced by the ESM variant
//   dist/cjs  - CommonJS (tsc, module CommonJS) marked by a nested package.json, plus the
//               index.cjs / index.d.cts entry points the exports map names.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const run = (args) => execFileSync(process.execPath, [tsc, ...args], { cwd: root, stdio: 'inherit' });

fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true });
run(['-p', 'tsconfig.json']);
run(['-p', 'tsconfig.cjs.json']);

const esmNative = path.join(root, 'dist', 'esm', 'native');
for (const ext of ['.js', '.d.ts', '.js.map']) {
  const from = path.join(esmNative, `dialect.esm${ext}`);
  if (fs.existsSync(from)) fs.renameSync(from, path.join(esmNative, `dialect${ext}`));
}
const cjs = path.join(root, 'dist', 'cjs');
fs.writeFileSync(path.join(cjs, 'package.json'), '{\n  "type": "commonjs"\n}\n');
fs.writeFileSync(path.join(cjs, 'index.cjs'), "'use strict';\nmodule.exports = require('./index.js');\n");
fs.writeFileSync(path.join(cjs, 'index.d.cts'), "export * from './index.js';\n");
const cli = path.join(root, 'dist', 'esm', 'cli', 'main.js');
if (fs.existsSync(cli)) fs.chmodSync(cli, 0o755);
console.log('built dist/esm and dist/cjs');
