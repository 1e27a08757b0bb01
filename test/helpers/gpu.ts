/**
 * GPU tests skip cleanly without a usable GPU and fail instead when SPARSE_KERNELS_REQUIRE_GPU=1
 * (npm run test:gpu), so a GPU run can never pass by skipping.
 */
import { Context } from '../../lib/context';
import { probeCuda } from '../../lib/backend';

export const REQUIRE_GPU = process.env.SPARSE_KERNELS_REQUIRE_GPU === '1';

let usable: boolean | undefined;
let reason = '';
export function cudaUsable(): boolean {
  if (usable === undefined) {
    const p = probeCuda();
    usable = p.usable;
    reason = p.reason;
  }
  return usable;
}

/** describe() for GPU tests: runs with a GPU, fails with REQUIRE_GPU and no GPU, skips otherwise. */
export function describeGpu(name: string, fn: () => void): void {
  if (cudaUsable()) {
    describe(name, fn);
  } else if (REQUIRE_GPU) {
    describe(name, () => {
      test('needs a usable CUDA GPU (SPARSE_KERNELS_REQUIRE_GPU=1)', () => {
        throw new Error(`SPARSE_KERNELS_REQUIRE_GPU=1 but CUDA is not usable: ${reason}`);
      });
    });
  } else {
    describe.skip(`${name} (no usable CUDA GPU)`, fn);
  }
}

let gpu: Context | undefined;
let cpu: Context | undefined;
export function gpuContext(): Context {
  if (gpu === undefined || gpu.isDisposed) gpu = new Context({ device: 'cuda' });
  return gpu;
}
export function cpuContext(): Context {
  if (cpu === undefined || cpu.isDisposed) cpu = new Context({ device: 'cpu' });
  return cpu;
}

/** The contexts a backend-agnostic test runs on: always the CPU, plus the GPU when usable. */
export function testContexts(): Array<[string, () => Context]> {
  const list: Array<[string, () => Context]> = [['cpu', cpuContext]];
  if (cudaUsable() || REQUIRE_GPU) list.push(['cuda', gpuContext]);
  return list;
}
