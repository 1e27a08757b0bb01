// publint + arethetypeswrong on the packed tarball (packed with --ignore-scripts: packing must not
// rebuild the addon).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sk-lint-'));
const out = JSON.parse(execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: root, encoding: 'utf8' }));
const tgz = path.join(dir, out[0].filename);
const bin = (name) => path.join(root, 'node_modules', '.bin', name);
execFileSync(bin('publint'), ['run', tgz, '--strict'], { cwd: root, stdio: 'inherit' });
execFileSync(bin('attw'), [tgz, '--profile', 'node16'], { cwd: root, stdio: 'inherit' });
fs.rmSync(dir, { recursive: true, force: true });
