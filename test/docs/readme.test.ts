/**
 * Keeps the README true: every ```js example runs (against the built package, on the CPU backend) and the
 * option tables match the options' JSDoc (scripts/gen-api-docs.mjs --check).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
const examples = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe('README', () => {
  test('has the examples this test runs', () => {
    expect(examples.length).toBeGreaterThanOrEqual(5);
  });

  test.each(examples.map((code, i) => [i, code] as const))('example %i runs', (_i, code) => {
    const entry = path.join(root, 'dist', 'esm', 'index.js');
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sk-readme-')), 'example.mjs');
    fs.writeFileSync(file, code.replace(/from 'sparse-kernels'/g, `from ${JSON.stringify(entry)}`));
    const r = spawnSync(process.execPath, [file], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, SPARSE_KERNELS_DEVICE: 'cpu' },
    });
    if (r.status !== 0) throw new Error(`example failed (${r.status}):\n${r.stderr}\n${r.stdout}`);
    expect(r.stdout.length).toBeGreaterThan(0);
  });

  test('option tables are generated from the current JSDoc', () => {
    const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'gen-api-docs.mjs'), '--check'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
