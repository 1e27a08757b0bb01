import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { backendInfo, formatBackendInfo, resolveBackend } from '../../lib/backend';
import { Context } from '../../lib/context';
import { CudaUnavailableError } from '../../lib/errors';
import { native } from '../../lib/native/load';
import { cudaUsable, REQUIRE_GPU } from '../helpers/gpu';

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
