import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { backendInfo, formatBackendInfo, resolveBackend } from '../../lib/backend';
import { Context } from '../../lib/context';
import { CudaUnavailableError } from '../../lib/errors';
import { native } from '../../lib/native/load';
import { cudaUsable, describeGpu, REQUIRE_GPU } from '../helpers/gpu';

const root = path.resolve(__dirname, '..', '..');

/** Runs a snippet in a fresh process (so CUDA probing state and env start clean). */
function runNode(code: string, env: Record<string, string> = {}) {
  return spawnSync(process.execPath, ['-e', code], {
    cwd: root,
    env: { ...process.env, SPARSE_KERNELS_LOG: '', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
}
const requireLib = `require(${JSON.stringify(path.join(root, 'dist', 'cjs', 'index.cjs'))})`;

describe('backend detection', () => {
  test('backendInfo() reports the backend, reason, versions, devices and the binary', () => {
    const info = backendInfo();
    expect(['cuda', 'cpu']).toContain(info.backend);
    expect(info.binaryPath).toMatch(/\.node$/);
    expect(info.napiVersion).toBeGreaterThanOrEqual(9);
    expect(info.cpu.threads).toBeGreaterThanOrEqual(1);
    expect(typeof formatBackendInfo(info)).toBe('string');
    if (info.backend === 'cuda') {
      expect(info.reason).toBeUndefined();
      expect(info.devices.length).toBeGreaterThan(0);
      expect(info.devices[0]!.computeCapability).toMatch(/^\d+\.\d+$/);
      expect(info.driverVersion).toBeGreaterThan(0);
    } else {
      expect(info.reason).toBeTruthy();
      expect(['built-without-cuda', 'no-driver', 'driver-too-old', 'no-device', 'no-kernel-image', 'init-failed']).toContain(
        info.reasonCode,
      );
    }
  });

  test('the CPU fallback reason matches what this machine has', () => {
    if (cudaUsable()) return; // the GPU machine: covered by the test above
    expect(REQUIRE_GPU).toBe(false);
    const info = backendInfo();
    if (!info.builtWithCuda) {
      expect(info.reasonCode).toBe('built-without-cuda');
    } else {
      // CI and build machines have nvcc but no NVIDIA driver: the static runtime must say so.
      expect(info.reasonCode).toBe('no-driver');
      expect(info.driverVersion).toBe(0);
      expect(info.runtimeVersion).toBeGreaterThanOrEqual(13000);
      expect(info.builtArchitectures).toMatch(/90/);
    }
  });

  test('device "cuda" throws CudaUnavailableError with the reason when CUDA is unusable', () => {
    if (cudaUsable()) {
      expect(resolveBackend('cuda').backend).toBe('cuda');
      return;
    }
    expect(() => new Context({ device: 'cuda' })).toThrow(CudaUnavailableError);
    expect(() => new Context({ device: 'cuda' })).toThrow(/CUDA is not available: .+/);
  });

  test('device "cpu" never initialises CUDA', () => {
    const r = runNode(
      `const sk = ${requireLib}; const c = new sk.Context({device:'cpu'}); const t = sk.Tensor.zeros([4],{context:c});` +
        `t.toArray().then(()=>{ const b = require(sk.backendInfo().binaryPath); console.log(JSON.stringify({probed: b.cudaProbed(), backend: c.backend})); });`,
      { SPARSE_KERNELS_DEVICE: 'cpu' },
    );
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out).toEqual({ probed: false, backend: 'cpu' });
    expect(r.stderr).not.toMatch(/CPU backend/);
  });

  test('device "auto" falls back to the CPU and says why once, on stderr', () => {
    if (cudaUsable()) return;
    const r = runNode(`const sk = ${requireLib}; new sk.Context(); new sk.Context(); console.log('ok')`);
    expect(r.status).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.includes('using the CPU backend'));
    expect(lines).toHaveLength(1);
  });

  test('SPARSE_KERNELS_DEVICE must be a known value', () => {
    const r = runNode(`const sk = ${requireLib}; try { new sk.Context(); } catch (e) { console.log(e.name + ': ' + e.message); }`, {
      SPARSE_KERNELS_DEVICE: 'tpu',
    });
    expect(r.stdout).toMatch(/RangeError: .*SPARSE_KERNELS_DEVICE/);
  });

  test('npx sparse-kernels inspect prints the same facts', () => {
    const r = spawnSync(process.execPath, [path.join(root, 'dist', 'esm', 'cli', 'main.js'), 'inspect'], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^backend: +(cuda|cpu)/m);
    expect(r.stdout).toMatch(/binary: +.*\.node/);
    expect(r.stdout).toMatch(/CUDA driver:/);
    const json = spawnSync(process.execPath, [path.join(root, 'dist', 'esm', 'cli', 'main.js'), 'inspect', '--json'], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(JSON.parse(json.stdout).binaryPath).toMatch(/\.node$/);
  });

  test('setNumThreads resizes the CPU pool', () => {
    const b = native();
    const before = b.cpuInfo().threads;
    b.setNumThreads(3);
    expect(b.cpuInfo().threads).toBe(3);
    b.setNumThreads(before);
    // Native-thrown errors come from the main realm, not jest's sandbox: check the message.
    expect(() => b.setNumThreads(0)).toThrow(/threads must be in \[1, 1024\]/);
  });
});

describe('loader', () => {
  test('a bad SPARSE_KERNELS_BINARY gives a help text listing what was tried', () => {
    const r = runNode(`try { ${requireLib}.backendInfo(); } catch (e) { console.log(e.code); console.log(e.message); }`, {
      SPARSE_KERNELS_BINARY: '/nonexistent/addon.node',
    });
    expect(r.stdout).toMatch(/^ERR_NO_BINARY/);
    expect(r.stdout).toMatch(/SPARSE_KERNELS_BINARY: \/nonexistent\/addon\.node/);
    expect(r.stdout).toMatch(/Possible solutions/);
    expect(r.stdout).toMatch(/cmake-js/);
  });
});

/** The environment of a child process, with CUDA_MODULE_LOADING as given (undefined: unset). */
const envWith = (moduleLoading: string | undefined) => {
  const env: Record<string, string | undefined> = { ...process.env, SPARSE_KERNELS_LOG: 'silent' };
  delete env.CUDA_MODULE_LOADING; // this worker's probe may have set it
  if (moduleLoading !== undefined) env.CUDA_MODULE_LOADING = moduleLoading;
  return env as NodeJS.ProcessEnv;
};
const runWith = (moduleLoading: string | undefined, code: string) => {
  const r = spawnSync(process.execPath, ['-e', code], { cwd: root, env: envWith(moduleLoading), encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`child failed (${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
};

describe('CUDA module loading', () => {
  test('eager by default, the user\'s CUDA_MODULE_LOADING respected, reported by backendInfo()', () => {
    const code = `const sk = ${requireLib}; const i = sk.backendInfo();
      console.log(JSON.stringify({ backend: i.backend, moduleLoading: i.moduleLoading ?? null, source: i.moduleLoadingSource ?? null, env: process.env.CUDA_MODULE_LOADING ?? null }));`;
    const byDefault = runWith(undefined, code);
    if (!cudaUsable()) {
      // No usable GPU: nothing was loaded, nothing is reported (the variable may still have been set for cuInit).
      expect(byDefault.moduleLoading).toBeNull();
      return;
    }
    // This binary has SASS for the test GPU (a build for it): eager. (On a GPU that would JIT our PTX the probe
    // leaves CUDA's lazy default, source "cuda-default".)
    expect(byDefault).toEqual({ backend: 'cuda', moduleLoading: 'eager', source: 'sparse-kernels', env: 'EAGER' });
    expect(runWith('LAZY', code)).toEqual({ backend: 'cuda', moduleLoading: 'lazy', source: 'environment', env: 'LAZY' });
  });

});

describeGpu('first kernel launches (CUDA)', () => {
  test('the first launch of each op does not wait for a busy GPU (no lazy kernel loading on the event loop)', () => {
    // Everything is created (and the runtime kernels loaded) first; then, behind a 1.5 s spin, the first
    // launch of the attention, SpMM, DeltaLinear and PBS kernels in this process.
    const code = `const sk = ${requireLib};
      (async () => {
        const ctx = new sk.Context({ device: 'cuda' });
        let seed = 7;
        const rnd = (n) => Float32Array.from({ length: n }, () => (seed = (seed * 48271) % 2147483647) / 2147483647 - 0.5);
        const mk = (dims, dtype = 'bfloat16') => sk.Tensor.from(rnd(dims.reduce((a, b) => a * b, 1)), dims, { dtype, context: ctx });
        const [H, N, D] = [2, 300, 64];
        const q = mk([1, H, N, D]), k = mk([1, H, N, D]), v = mk([1, H, N, D]);
        const layout = sk.BlockLayout.denseCausal({ seqLen: N, blockSize: 64 });
        const W = await sk.BlockSparseMatrix.fromDense(mk([256, 512]), { blockShape: [32, 32], sparsity: 0.5 });
        const xs = mk([64, 512]);
        const layer = new sk.DeltaLinear(mk([128, 256], 'float16'), null, { threshold: 0.05 });
        const state = layer.createState(4);
        const xd = mk([4, 256], 'float16');
        await ctx.synchronize();
        ctx.stream._native.spinForTesting(1500);
        const t0 = performance.now();
        sk.blockSparseAttention(q, k, v, layout);
        sk.spmm(xs, W);
        layer.step(state, xd);
        sk.pbsAttention(q, k, v, { threshold: 0.9 });
        const enqueueMs = performance.now() - t0;
        const pending = ctx.stream.pending;
        await ctx.synchronize();
        console.log(JSON.stringify({ enqueueMs, pending, moduleLoading: sk.backendInfo().moduleLoading }));
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const eager = runWith(undefined, code);
    const lazy = runWith('LAZY', code);
    console.log(`[module loading] first launches behind a 1.5 s spin: eager ${eager.enqueueMs.toFixed(1)} ms, lazy ${lazy.enqueueMs.toFixed(1)} ms (CUDA_MODULE_LOADING=LAZY, for comparison)`);
    expect(eager.moduleLoading).toBe('eager');
    expect(eager.pending).toBeGreaterThan(0);
    expect(eager.enqueueMs).toBeLessThan(500);
  });
});
