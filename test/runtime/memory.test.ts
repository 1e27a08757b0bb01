import { Tensor } from '../../lib/tensor';
import { Context } from '../../lib/context';
import { OutOfMemoryError } from '../../lib/errors';
import { describeGpu, gpuContext, testContexts } from '../helpers/gpu';

describe.each(testContexts())('memory accounting on %s', (_name, getContext) => {
  test('10,000 create/dispose cycles return to the baseline', async () => {
    const ctx = getContext();
    await ctx.synchronize();
    const base = ctx.memory();
    for (let i = 0; i < 10_000; i++) {
      const t = Tensor.zeros([256 + (i % 64)], { context: ctx });
      const u = t.cast('float16');
      t.dispose();
      u.dispose();
    }
    await ctx.synchronize();
    const after = ctx.memory();
    expect(after.tensors).toBe(base.tensors);
    expect(after.deviceBytes).toBe(base.deviceBytes);
    expect(after.hostBytes).toBe(base.hostBytes);
  });

  test('context.dispose() disposes what it created', async () => {
    const ctx = new Context({ device: getContext().backend });
    const ts = [Tensor.zeros([10], { context: ctx }), Tensor.zeros([20], { context: ctx })];
    expect(ctx.memory().tensors).toBe(2);
    await ctx[Symbol.asyncDispose]();
    expect(ts.every((t) => t.isDisposed)).toBe(true);
    expect(() => ctx.memory()).toThrow(/disposed/);
  });
});

describeGpu('device memory (CUDA)', () => {
  test('device memory returns to baseline after 10,000 cycles', async () => {
    const ctx = gpuContext();
    // Warm-up: CUDA loads kernels lazily (module memory) and the pool sets itself up on first use.
    for (let i = 0; i < 100; i++) Tensor.zeros([1 << 14], { context: ctx }).dispose();
    await ctx.releaseCachedMemory();
    // What this process holds on the device: the memory pool's reservation. (cudaMemGetInfo is device-wide:
    // with the test files running in parallel processes it moves with their allocations, by hundreds of
    // MiB in the first H200 run, so it cannot attribute a leak to this process.)
    const base = ctx.memory().poolReservedBytes;
    let peak = 0;
    for (let i = 0; i < 10_000; i++) {
      const t = Tensor.zeros([1 << 14], { context: ctx }); // 64 KiB each
      if (i % 1000 === 0) peak = Math.max(peak, ctx.memory().deviceBytes);
      t.dispose();
    }
    await ctx.releaseCachedMemory();
    expect(peak).toBeGreaterThan(0); // the allocations happened
    expect(ctx.memory().deviceBytes).toBe(0);
    expect(ctx.memory().poolReservedBytes).toBeLessThanOrEqual(base);
  });

  test('allocation beyond maxDeviceBytes or beyond the device rejects with ERR_OUT_OF_MEMORY', async () => {
    const capped = new Context({ device: 'cuda', maxDeviceBytes: 1 << 20 });
    const t = Tensor.zeros([1 << 19], { context: capped }); // 2 MiB > 1 MiB
    await expect(t.toArray()).rejects.toBeInstanceOf(OutOfMemoryError);
    await expect(capped.synchronize()).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY' });
    const ctx = gpuContext();
    const { totalBytes, freeBytes } = ctx.deviceMemoryInfo();
    // More than the device has. (A request between free and total memory is not tried here: while the pool
    // grows towards it, allocations of the other test processes sharing the GPU would fail.)
    void freeBytes;
    for (const bytes of [totalBytes * 2]) {
      const huge = Tensor.empty([Math.ceil(bytes / 4)], { context: ctx });
      await expect(huge.toArray()).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY' });
      await expect(ctx.synchronize()).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY' });
    }
    // The failed requests left nothing reserved in the pool.
    expect(ctx.memory().poolReservedBytes).toBeLessThan(1 << 30);
    // works normally afterwards
    const ok = Tensor.from([1, 2, 3], [3], { context: ctx });
    expect(Array.from(await ok.toArray())).toEqual([1, 2, 3]);
    ok.dispose();
    capped.dispose();
  });
});
