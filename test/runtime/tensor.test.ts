import * as os from 'node:os';
import { Tensor } from '../../lib/tensor';
import { DTYPES, type DType, float32ToBFloat16Bits, float32ToFloat16Bits, fromHalfBits } from '../../lib/dtype';
import { DisposedError, OutOfMemoryError } from '../../lib/errors';
import { Context } from '../../lib/context';
import { testContexts } from '../helpers/gpu';
import { rng } from '../helpers/random';

function sample(dtype: DType, n: number, seedLabel: string): { data: ArrayLike<number> & { length: number }; expect: ArrayLike<number> } {
  const { rng: r } = rng(seedLabel);
  switch (dtype) {
    case 'float32': {
      const d = r.normals(n);
      return { data: d, expect: d };
    }
    case 'float16':
    case 'bfloat16': {
      const bits = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        const v = r.normal() * 100;
        bits[i] = dtype === 'float16' ? float32ToFloat16Bits(v) : float32ToBFloat16Bits(v);
      }
      return { data: bits, expect: bits };
    }
    case 'int32': {
      const d = new Int32Array(n).map(() => r.int(-(2 ** 31), 2 ** 31 - 1));
      return { data: d, expect: d };
    }
    case 'int8': {
      const d = new Int8Array(n).map(() => r.int(-128, 127));
      return { data: d, expect: d };
    }
    case 'uint8': {
      const d = new Uint8Array(n).map(() => r.int(0, 255));
      return { data: d, expect: d };
    }
  }
}

describe.each(testContexts())('Tensor on %s', (_name, getContext) => {
  const sizes = [0, 1, 7, 1000, 300_001]; // 300_001 float32 > 1 MiB: the asynchronous-read upload path

  test.each(DTYPES.flatMap((d) => sizes.map((n) => [d, n] as const)))('round trip %s x%i', async (dtype, n) => {
    const ctx = getContext();
    const { data, expect: want } = sample(dtype, n, `${dtype}${n}`);
    const t = Tensor.from(data as Float32Array, [n], { dtype, context: ctx });
    expect(t.dtype).toBe(dtype);
    expect(t.dims).toEqual([n]);
    expect(t.location).toBe(ctx.backend);
    const back = await t.toArray();
    expect(back.length).toBe(n);
    expect(Array.from(back)).toEqual(Array.from(want));
    t.dispose();
    expect(t.location).toBe('none');
  });

  test('float32 values into float16/bfloat16 round to nearest even, back exactly', async () => {
    const ctx = getContext();
    const { rng: r } = rng('half');
    const vals = r.normals(4097, 1000);
    for (const dtype of ['float16', 'bfloat16'] as const) {
      const t = Tensor.from(vals, [4097], { dtype, context: ctx });
      const bits = await t.toArray();
      const conv = dtype === 'float16' ? float32ToFloat16Bits : float32ToBFloat16Bits;
      for (let i = 0; i < vals.length; i++) expect(bits[i]).toBe(conv(vals[i]!));
      const f = await t.toFloat32Array();
      expect(Array.from(f)).toEqual(Array.from(fromHalfBits(bits, dtype)));
    }
  });

  test('every float16 and bfloat16 bit pattern converts like the JS reference', async () => {
    const ctx = getContext();
    const all = new Uint16Array(65536).map((_, i) => i);
    for (const dtype of ['float16', 'bfloat16'] as const) {
      const t = Tensor.from(all, [65536], { dtype, context: ctx });
      const f = await t.toFloat32Array();
      const ref = fromHalfBits(all, dtype);
      for (let i = 0; i < 65536; i++) {
        if (Number.isNaN(ref[i]!)) expect(Number.isNaN(f[i]!)).toBe(true);
        else expect(f[i]).toBe(ref[i]);
      }
      // and back: float32 -> half reproduces every non-NaN pattern
      const back = Tensor.from(f, [65536], { dtype, context: ctx });
      const bits = await back.toArray();
      for (let i = 0; i < 65536; i++) if (!Number.isNaN(ref[i]!)) expect(bits[i]).toBe(i);
    }
  });

  test('zeros, empty, clone, cast, reshape', async () => {
    const ctx = getContext();
    const z = Tensor.zeros([3, 5], { dtype: 'int32', context: ctx });
    expect(Array.from(await z.toArray())).toEqual(new Array(15).fill(0));
    const e = Tensor.empty([2, 2], { context: ctx });
    expect(e.dtype).toBe('float32');
    expect(e.size).toBe(4);
    const { rng: r } = rng('clone');
    const src = Tensor.from(r.normals(64), [8, 8], { context: ctx });
    const c = src.clone();
    src.dispose();
    expect((await c.toArray()).length).toBe(64);
    const h = c.cast('bfloat16');
    const back = await h.cast('float32').toArray();
    const orig = await c.toArray();
    for (let i = 0; i < 64; i++) expect(Math.abs(back[i]! - orig[i]!)).toBeLessThanOrEqual(Math.abs(orig[i]!) * 2 ** -8);
    const v = c.reshape([4, 16]);
    c.dispose();
    expect(v.dims).toEqual([4, 16]);
    expect(Array.from(await v.toArray())).toEqual(Array.from(orig));
    expect(() => v.reshape([5, 5])).toThrow(RangeError);
  });

  test('using a disposed tensor throws DisposedError; dispose is idempotent', async () => {
    const ctx = getContext();
    const t = Tensor.from([1, 2, 3], [3], { context: ctx });
    t.dispose();
    t.dispose();
    expect(t.isDisposed).toBe(true);
    await expect(t.toArray()).rejects.toBeInstanceOf(DisposedError);
    expect(() => t.clone()).toThrow(DisposedError);
  });

  test('Symbol.dispose releases the tensor (using declarations)', async () => {
    const ctx = getContext();
    // memory() counts live storages: a disposed tensor's memory is freed once the work already queued on it
    // (here Tensor.from's upload) is done, so the count is read after the stream has drained.
    await ctx.synchronize();
    const before = ctx.memory().tensors;
    {
      const t = Tensor.from([1, 2], [2], { context: ctx });
      expect(ctx.memory().tensors).toBe(before + 1);
      t[Symbol.dispose]();
    }
    await ctx.synchronize();
    expect(ctx.memory().tensors).toBe(before);
  });
});

describe('Tensor argument validation', () => {
  const ctx = new Context({ device: 'cpu' });
  afterAll(() => ctx.dispose());
  test.each([
    ['wrong data', () => Tensor.from('abc' as never, undefined, { context: ctx }), TypeError],
    ['dims mismatch', () => Tensor.from([1, 2, 3], [2, 2], { context: ctx }), RangeError],
    ['negative dim', () => Tensor.from([1], [-1], { context: ctx }), RangeError],
    ['fractional dim', () => Tensor.zeros([1.5], { context: ctx }), RangeError],
    ['unknown dtype', () => Tensor.zeros([1], { dtype: 'float64' as never, context: ctx }), RangeError],
    ['Uint16Array without half dtype', () => Tensor.from(new Uint16Array(2), [2], { context: ctx }), TypeError],
    ['int data out of range', () => Tensor.from([300], [1], { dtype: 'int8', context: ctx }), RangeError],
    ['float data into int tensor', () => Tensor.from(new Float32Array(2), [2], { dtype: 'int32', context: ctx }), TypeError],
    ['unknown option', () => Tensor.zeros([1], { context: ctx, colour: 1 } as never), RangeError],
    ['non-number element', () => Tensor.from([1, 'x' as never], [2], { context: ctx }), TypeError],
    ['bad context', () => Tensor.zeros([1], { context: {} as never }), TypeError],
  ])('%s', (_label, fn, type) => {
    expect(fn).toThrow(type as unknown as ErrorConstructor);
  });

  test('messages name the argument', () => {
    expect(() => Tensor.from([1, 2, 3], [2, 2], { context: ctx })).toThrow(/dims/);
    expect(() => Tensor.zeros([1], { dtype: 'x' as never, context: ctx })).toThrow(/options\.dtype/);
  });

  test('an allocation beyond maxDeviceBytes rejects with ERR_OUT_OF_MEMORY and the library keeps working', async () => {
    const capped = new Context({ device: 'cpu', maxDeviceBytes: 4096 });
    const ok = Tensor.zeros([512], { context: capped }); // 2 KiB
    const tooBig = Tensor.zeros([1024], { context: capped }); // +4 KiB > cap
    expect(tooBig.location).toBe('cpu');
    await expect(tooBig.toArray()).rejects.toBeInstanceOf(OutOfMemoryError);
    await expect(tooBig.toArray()).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY' });
    await expect(capped.synchronize()).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY' });
    // An op on the failed tensor fails the same way instead of computing on garbage.
    const derived = tooBig.cast('bfloat16');
    await expect(derived.toArray()).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY' });
    // and the context keeps working
    await capped.synchronize();
    expect(Array.from(await ok.toArray())).toEqual(new Array(512).fill(0));
    ok.dispose();
    const fits = Tensor.from(new Float32Array(1024).fill(3), [1024], { context: capped });
    expect((await fits.toArray())[1023]).toBe(3);
    capped.dispose();
  });

  test('a host allocation larger than the machine\'s memory fails as ERR_OUT_OF_MEMORY whatever the overcommit policy', async () => {
    // With vm.overcommit_memory=1 (common on GPU hosts) malloc grants it and zero-filling it gets the
    // process OOM-killed; the allocator refuses anything above RAM (or the cgroup limit) itself.
    const ctx = new Context({ device: 'cpu' });
    const bytes = 2 * os.totalmem();
    const huge = Tensor.zeros([2, Math.ceil(bytes / 8)], { context: ctx });
    await expect(huge.toArray()).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY', message: expect.stringMatching(/more than this process can hold/) });
    await expect(ctx.synchronize()).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY' });
    expect(ctx.memory().tensors).toBe(0);
    huge.dispose();
    ctx.dispose();
  });
});
