import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
const requireLib = `require(${JSON.stringify(path.join(root, 'dist', 'cjs', 'index.cjs'))})`;

function runNode(code: string, timeout = 30_000) {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['-e', code], { cwd: root, encoding: 'utf8', timeout, env: { ...process.env } });
  return { ...r, ms: Date.now() - t0 };
}

describe('process lifecycle', () => {
  test('a process that exits with work pending does not hang', () => {
    // 20 s of queued work; the process ends right away (explicit exit and natural end of script).
    const queued = `const sk = ${requireLib}; const c = new sk.Context({device:'cpu'}); const s = c.createStream();` +
      `for (let i = 0; i < 20; i++) s._native.spinForTesting(1000); sk.Tensor.zeros([1e6], {stream: s});`;
    const natural = runNode(`${queued} console.log('end of script');`);
    expect(natural.status).toBe(0);
    expect(natural.stdout).toMatch(/end of script/);
    expect(natural.ms).toBeLessThan(10_000);
    const explicit = runNode(`${queued} process.exit(3);`);
    expect(explicit.status).toBe(3);
    expect(explicit.ms).toBeLessThan(10_000);
  });

  test('a pending promise keeps the process alive until it settles', () => {
    const r = runNode(
      `const sk = ${requireLib}; const c = new sk.Context({device:'cpu'}); c.stream._native.spinForTesting(300);` +
        `sk.Tensor.from([1,2,3],[3],{context:c}).toArray().then(a => console.log('got', Array.from(a).join(',')));`,
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/got 1,2,3/);
    expect(r.ms).toBeGreaterThanOrEqual(300);
  });

  test('worker_threads can use the addon at the same time as the main thread', () => {
    const r = runNode(`
      const { Worker } = require('node:worker_threads');
      const sk = ${requireLib};
      const code = \`
        const { parentPort } = require('node:worker_threads');
        const sk = require(${JSON.stringify(path.join(root, 'dist', 'cjs', 'index.cjs'))});
        (async () => {
          const c = new sk.Context({ device: 'cpu' });
          let sum = 0;
          for (let i = 0; i < 50; i++) {
            const t = sk.Tensor.from(new Float32Array(1000).fill(i), [1000], { context: c });
            const h = t.cast('bfloat16');
            sum += (await h.toFloat32Array())[999];
            t.dispose(); h.dispose();
          }
          parentPort.postMessage(sum);
        })();\`;
      const runs = [0, 1, 2].map(() => new Promise((res, rej) => {
        const w = new Worker(code, { eval: true });
        w.on('message', res); w.on('error', rej);
      }));
      (async () => {
        const c = new sk.Context({ device: 'cpu' });
        const main = await sk.Tensor.from([5, 6], [2], { context: c }).toArray();
        const sums = await Promise.all(runs);
        console.log(JSON.stringify({ sums, main: Array.from(main) }));
      })();
    `);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toEqual({ sums: [1225, 1225, 1225], main: [5, 6] });
  });
});
