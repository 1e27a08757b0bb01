import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describeGpu } from '../helpers/gpu';

const root = path.resolve(__dirname, '..', '..');
const requireLib = `require(${JSON.stringify(path.join(root, 'dist', 'cjs', 'index.cjs'))})`;

describeGpu('GPU faults', () => {
  // A device fault poisons the whole CUDA context of the process, so it runs in a child process.
  test('a device fault rejects the promises with the CUDA error name instead of crashing or hanging', () => {
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `const sk = ${requireLib};
         (async () => {
           const c = new sk.Context({ device: 'cuda' });
           const t = sk.Tensor.from([1, 2, 3], [3], { context: c });
           await t.toArray();
           c.stream._native.faultForTesting();
           const after = t.clone();
           const out = {};
           try { await c.synchronize(); out.sync = 'resolved'; } catch (e) { out.sync = [e.name, e.code, e.cudaError]; }
           try { await after.toArray(); out.read = 'resolved'; } catch (e) { out.read = [e.name, e.code, e.cudaError]; }
           console.log(JSON.stringify(out));
         })();`,
      ],
      { cwd: root, encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.sync).toEqual(['CudaError', 'ERR_CUDA', expect.stringMatching(/^cudaError/)]);
    expect(out.read[1]).toBe('ERR_CUDA');
  });
});
