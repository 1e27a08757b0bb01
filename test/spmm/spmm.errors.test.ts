/**
 * Argument errors of spmm and the BlockSparseMatrix builders: every bad argument is a TypeError /
 * RangeError (ShapeError is a RangeError) naming it, thrown before native work; malformed block-CSR is
 * rejected on the host with the position and the value, by the JS checks and again by the native
 * check_bsr_structure gate. A seeded fuzz loop corrupts valid block-CSR thousands of ways and checks
 * that each result is either rejected or genuinely valid (judged by an independent validator).
 */
import { Context } from '../../lib/context';
import { DisposedError, ShapeError } from '../../lib/errors';
import type { SpmmBinding } from '../../lib/native/spmm';
import { nativeOps } from '../../lib/native/load';
import { BlockSparseMatrix, spmm } from '../../lib/spmm';
import { Tensor } from '../../lib/tensor';
import { cpuContext } from '../helpers/gpu';
import { Rng, rng } from '../helpers/random';
import { isValidCsr } from '../reference/spmm';

/** A valid 3 x 4 block grid of 2 x 2 blocks: M = 6, K = 7 (last block column padded). */
function valid() {
  return {
    rowPtr: [0, 2, 2, 5],
    colIdx: [0, 3, 1, 2, 3],
    values: new Float32Array(5 * 4).fill(0.5),
    shape: [6, 7] as [number, number],
    block: [2, 2] as [number, number],
  };
}

/**
 * The raw native gate, its errors mapped to this realm's classes (the addon throws the main realm's
 * RangeError / TypeError, which jest's sandbox does not see as instances of its own).
 */
function nativeGate(rowPtr: Int32Array, colIdx: Int32Array, dims: { rows: number; cols: number; bm: number; bk: number }): Int32Array {
  try {
    return nativeOps<SpmmBinding>().spmmCheckStructure(rowPtr, colIdx, dims);
  } catch (e) {
    const err = e as Error;
    if (err.name === 'RangeError') throw new RangeError(err.message);
    if (err.name === 'TypeError') throw new TypeError(err.message);
    throw e;
  }
}

const build = (o: ReturnType<typeof valid>, options?: object) =>
  BlockSparseMatrix.fromBlockCsr(o.rowPtr, o.colIdx, o.values, o.shape, o.block, { context: cpuContext(), ...options });

async function matrix(m = 6, k = 7): Promise<BlockSparseMatrix> {
  return BlockSparseMatrix.fromDense(Tensor.from(new Float32Array(m * k).fill(1), [m, k], { context: cpuContext() }), { blockShape: [2, 2] });
}

describe('spmm argument errors', () => {
  test('x, w and their shapes / dtypes', async () => {
    const ctx = cpuContext();
    const w = await matrix();
    const x = Tensor.from(new Float32Array(3 * 7), [3, 7], { context: ctx });
    expect(() => spmm(new Float32Array(21) as never, w)).toThrow(new TypeError('Expected a Tensor for x but received Float32Array(21)'));
    expect(() => spmm(x, {} as never)).toThrow(/Expected a BlockSparseMatrix for w/);
    expect(() => spmm(Tensor.from(new Float32Array(3 * 6), [3, 6], { context: ctx }), w)).toThrow(ShapeError);
    expect(() => spmm(Tensor.from(new Float32Array(3 * 6), [3, 6], { context: ctx }), w)).toThrow(/x to have dims \[\.\.\., 7\]/);
    expect(() => spmm(Tensor.from(new Float32Array(1), [], { context: ctx }), w)).toThrow(ShapeError);
    expect(() => spmm(Tensor.from(new Float32Array(21), [3, 7], { dtype: 'bfloat16', context: ctx }), w)).toThrow(
      /Expected x to have w's dtype \(float32\) but it is bfloat16/,
    );
    expect(() => spmm(Tensor.from(new Int32Array(21), [3, 7], { context: ctx }), w)).toThrow(TypeError);
    const gone = Tensor.from(new Float32Array(21), [3, 7], { context: ctx });
    gone.dispose();
    expect(() => spmm(gone, w)).toThrow(DisposedError);
    const w2 = await matrix();
    w2.dispose();
    expect(() => spmm(x, w2)).toThrow(new DisposedError('w was disposed'));
    w.dispose();
  });

  test('options: bias, out, activation, backend, stream, unknown keys', async () => {
    const ctx = cpuContext();
    const w = await matrix();
    const x = Tensor.from(new Float32Array(3 * 7), [3, 7], { context: ctx });
    expect(() => spmm(x, w, { bias: Tensor.from(new Float32Array(5), [5], { context: ctx }) })).toThrow(/options.bias to have dims \[6\]/);
    expect(() => spmm(x, w, { bias: Tensor.from(new Float32Array(6), [6], { dtype: 'float16', context: ctx }) })).toThrow(
      /options.bias to have w's dtype/,
    );
    expect(() => spmm(x, w, { bias: [1, 2] as never })).toThrow(/Expected a Tensor for options.bias/);
    expect(() => spmm(x, w, { out: Tensor.zeros([3, 7], { context: ctx }) })).toThrow(/options.out to have dims \[3, 6\]/);
    expect(() => spmm(x, w, { out: Tensor.zeros([3, 6], { dtype: 'bfloat16', context: ctx }) })).toThrow(/options.out to have w's dtype/);
    expect(() => spmm(x, w, { activation: 'tanh' as never })).toThrow(new RangeError('Expected one of "none", "relu", "gelu", "silu" for options.activation but received "tanh"'));
    expect(() => spmm(x, w, { backend: 'bsr' as never })).toThrow(/one of "auto", "sparse", "dense" for options.backend/);
    expect(() => spmm(x, w, { alpha: 2 } as never)).toThrow(/options.alpha/);
    expect(() => spmm(x, w, 5 as never)).toThrow(TypeError);
    const other = new Context({ device: 'cpu' });
    expect(() => spmm(x, w, { stream: other.stream })).toThrow(/a stream of the tensors' context for options.stream/);
    expect(() => spmm(x, w, { stream: {} as never })).toThrow(/Expected a Stream for options.stream/);
    // Another context for w than for x.
    const xo = Tensor.from(new Float32Array(3 * 7), [3, 7], { context: other });
    expect(() => spmm(xo, w)).toThrow(/w is on another context/);
    expect(() => spmm(x, w, { bias: Tensor.zeros([6], { context: other }) })).toThrow(/options.bias is on another context/);
    other.dispose();
    w.dispose();
  });

  test('options.out must not share memory with x or the bias (in place would read overwritten rows)', async () => {
    const ctx = cpuContext();
    const w = await BlockSparseMatrix.fromDense(Tensor.from(new Float32Array(36).fill(1), [6, 6], { context: ctx }), { blockShape: [2, 2] });
    const x = Tensor.from(new Float32Array(4 * 6), [4, 6], { context: ctx });
    expect(() => spmm(x, w, { out: x })).toThrow(new RangeError('Expected options.out to share no memory with x'));
    expect(() => spmm(x, w, { out: x.reshape([4, 6]) })).toThrow(/share no memory with x/);
    const b = Tensor.from(new Float32Array(6), [6], { context: ctx });
    expect(() => spmm(Tensor.zeros([1, 6], { context: ctx }), w, { bias: b, out: b.reshape([1, 6]) })).toThrow(/share no memory with options.bias/);
    w.dispose();
  });
});

describe('BlockSparseMatrix.fromDense argument errors (rejections)', () => {
  test('w, blockShape, tolerance, sparsity, options', async () => {
    const ctx = cpuContext();
    const W = Tensor.from(new Float32Array(12), [3, 4], { context: ctx });
    await expect(BlockSparseMatrix.fromDense([1, 2] as never)).rejects.toThrow(/Expected a Tensor for w/);
    await expect(BlockSparseMatrix.fromDense(Tensor.from(new Float32Array(12), [12], { context: ctx }))).rejects.toThrow(ShapeError);
    await expect(BlockSparseMatrix.fromDense(Tensor.from(new Int32Array(12), [3, 4], { context: ctx }))).rejects.toThrow(TypeError);
    await expect(BlockSparseMatrix.fromDense(W, { blockShape: [0, 4] })).rejects.toThrow(new RangeError('Expected an integer between 1 and 2147483647 for options.blockShape[0] but received 0'));
    await expect(BlockSparseMatrix.fromDense(W, { blockShape: [2.5, 4] })).rejects.toThrow(TypeError);
    await expect(BlockSparseMatrix.fromDense(W, { blockShape: [2, 2, 2] as never })).rejects.toThrow(/a pair \[bm, bk\] for options.blockShape/);
    await expect(BlockSparseMatrix.fromDense(W, { blockShape: [8192, 8192] })).rejects.toThrow(/at most 2\^24 elements/);
    await expect(BlockSparseMatrix.fromDense(W, { tolerance: -1 })).rejects.toThrow(/a number >= 0 for options.tolerance/);
    await expect(BlockSparseMatrix.fromDense(W, { tolerance: NaN })).rejects.toThrow(/finite number for options.tolerance/);
    await expect(BlockSparseMatrix.fromDense(W, { tolerance: 1e39 })).rejects.toThrow(/finite float32 for options.tolerance/);
    await expect(BlockSparseMatrix.fromDense(W, { sparsity: 1.5 })).rejects.toThrow(/between 0 and 1 for options.sparsity/);
    await expect(BlockSparseMatrix.fromDense(W, { sparsity: -0.1 })).rejects.toThrow(RangeError);
    await expect(BlockSparseMatrix.fromDense(W, { sparsity: '0.5' as never })).rejects.toThrow(TypeError);
    await expect(BlockSparseMatrix.fromDense(W, { prune: 0.5 } as never)).rejects.toThrow(/options.prune/);
    const gone = Tensor.from(new Float32Array(12), [3, 4], { context: ctx });
    gone.dispose();
    await expect(BlockSparseMatrix.fromDense(gone)).rejects.toThrow(DisposedError);
  });
});

describe('BlockSparseMatrix.fromBlockCsr validation', () => {
  test('the valid fixture builds', () => {
    const w = build(valid());
    expect(w.nnzBlocks).toBe(5);
    expect(w.blockGrid).toEqual([3, 4]);
    w.dispose();
  });

  // Each case: a corruption, the error class and the message naming the position and value.
  const cases: Array<[string, (o: ReturnType<typeof valid>) => void, RegExp, Function]> = [
    ['rowPtr too short', (o) => (o.rowPtr = [0, 2, 5]), /ceil\(M \/ bm\) \+ 1 = 4 entries for rowPtr but received Int32Array\(3\)/, RangeError],
    ['rowPtr too long', (o) => (o.rowPtr = [0, 2, 2, 5, 5]), /4 entries for rowPtr/, RangeError],
    ['rowPtr[0] not 0', (o) => (o.rowPtr = [1, 2, 2, 5]), /Expected 0 for rowPtr\[0\] but received 1/, RangeError],
    ['rowPtr decreasing', (o) => (o.rowPtr = [0, 3, 2, 5]), /rowPtr\[2\] but received 2/, RangeError],
    ['rowPtr row longer than the grid', (o) => ((o.rowPtr = [0, 5, 5, 5]), (o.colIdx = [0, 1, 2, 3, 3])), /at most ceil\(K \/ bk\) = 4 blocks\) for rowPtr\[1\] but received 5/, RangeError],
    ['rowPtr[mb] != nnzb', (o) => (o.rowPtr = [0, 2, 2, 4]), /colIdx.length = 5 for rowPtr\[3\] but received 4/, RangeError],
    ['colIdx negative', (o) => (o.colIdx = [-1, 3, 1, 2, 3]), /block column in \[0, 4\) \(block row 0\) for colIdx\[0\] but received -1/, RangeError],
    ['colIdx out of range', (o) => (o.colIdx = [0, 4, 1, 2, 3]), /colIdx\[1\] but received 4/, RangeError],
    ['colIdx unsorted', (o) => (o.colIdx = [0, 3, 2, 1, 3]), /out of order\) for colIdx\[3\] but received 1/, RangeError],
    ['colIdx duplicate', (o) => (o.colIdx = [0, 3, 1, 1, 3]), /duplicate block\) for colIdx\[3\] but received 1/, RangeError],
    ['colIdx truncated', (o) => (o.colIdx = [0, 3, 1, 2]), /colIdx.length = 4 for rowPtr\[3\]/, RangeError],
    ['values too short', (o) => (o.values = new Float32Array(19)), /nnzb \* bm \* bk = 5 \* 2 \* 2 = 20 elements for values but received Float32Array\(19\)/, RangeError],
    ['values too long', (o) => (o.values = new Float32Array(21)), /20 elements for values/, RangeError],
    ['rowPtr non-integer', (o) => (o.rowPtr = [0, 2.5, 2, 5]), /Expected an integer for rowPtr\[1\] but received 2.5/, TypeError],
    ['colIdx not an int32', (o) => (o.colIdx = [0, 2 ** 31, 1, 2, 3]), /an int32 for colIdx\[1\]/, RangeError],
    ['colIdx string entry', (o) => (o.colIdx = [0, '3' as never, 1, 2, 3]), /integer for colIdx\[1\] but received "3"/, TypeError],
    ['rowPtr Float32Array', (o) => (o.rowPtr = new Float32Array([0, 2, 2, 5]) as never), /Int32Array or an array of integers for rowPtr/, TypeError],
    ['values Float64Array', (o) => (o.values = new Float64Array(20) as never), /for values but received Float64Array\(20\)/, TypeError],
    ['values a plain array', (o) => (o.values = new Array(20).fill(0) as never), /for values but received an array of length 20/, TypeError],
    ['shape negative', (o) => (o.shape = [-6, 7]), /shape\[0\]/, RangeError],
    ['shape not a pair', (o) => (o.shape = [6] as never), /a pair \[M, K\] for shape/, TypeError],
    ['block 0', (o) => (o.block = [2, 0]), /blockShape\[1\]/, RangeError],
  ];
  test.each(cases)('%s', (_name, corrupt, message, cls) => {
    const o = valid();
    corrupt(o);
    let err: unknown;
    try {
      build(o).dispose();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(cls);
    expect((err as Error).message).toMatch(message);
  });

  test('Uint16Array values need a 16-bit dtype; a values tensor must match options.dtype and context', () => {
    const o = valid();
    expect(() => BlockSparseMatrix.fromBlockCsr(o.rowPtr, o.colIdx, new Uint16Array(20), o.shape, o.block, { context: cpuContext() })).toThrow(
      /"float16" or "bfloat16" for Uint16Array values \(raw bits\) for options.dtype/,
    );
    expect(() =>
      BlockSparseMatrix.fromBlockCsr(o.rowPtr, o.colIdx, new Uint16Array(20), o.shape, o.block, { dtype: 'float32', context: cpuContext() }),
    ).toThrow(TypeError);
    const t = Tensor.from(new Float32Array(20), [20], { context: cpuContext() });
    expect(() => BlockSparseMatrix.fromBlockCsr(o.rowPtr, o.colIdx, t, o.shape, o.block, { dtype: 'bfloat16' })).toThrow(
      /values to have dtype bfloat16 \(options.dtype\) but it is float32/,
    );
    const other = new Context({ device: 'cpu' });
    expect(() => BlockSparseMatrix.fromBlockCsr(o.rowPtr, o.colIdx, t, o.shape, o.block, { context: other })).toThrow(/values is on another context/);
    expect(() => BlockSparseMatrix.fromBlockCsr(o.rowPtr, o.colIdx, o.values, o.shape, o.block, { context: cpuContext(), stream: other.stream })).toThrow(
      /options.stream/,
    );
    expect(() => BlockSparseMatrix.fromBlockCsr(o.rowPtr, o.colIdx, Tensor.from(new Float32Array(19), [19], { context: cpuContext() }), o.shape, o.block)).toThrow(
      /20 elements for values but received a tensor of 19 elements/,
    );
    expect(() => BlockSparseMatrix.fromBlockCsr(o.rowPtr, o.colIdx, o.values, o.shape, o.block, { context: 'cpu' as never })).toThrow(/a Context for options.context/);
    other.dispose();
  });

  test('the native gate (check_bsr_structure) rejects what the JS checks reject, naming the position', () => {
    const gate = (rp: Int32Array, ci: Int32Array, dims: { rows: number; cols: number; bm: number; bk: number }) => nativeGate(rp, ci, dims);
    const dims = { rows: 6, cols: 7, bm: 2, bk: 2 };
    expect(Array.from(gate(new Int32Array([0, 2, 2, 5]), new Int32Array([0, 3, 1, 2, 3]), dims))).toEqual([2, 0, 1]);
    expect(() => gate(new Int32Array([0, 2, 2, 5]), new Int32Array([0, 3, 1, 1, 3]), dims)).toThrow(/col_idx\[3\] = 1 .*duplicate block/);
    expect(() => gate(new Int32Array([0, 2, 2, 5]), new Int32Array([0, 3, 2, 1, 3]), dims)).toThrow(/col_idx\[3\] = 1 .*not sorted/);
    expect(() => gate(new Int32Array([0, 2, 2, 5]), new Int32Array([0, 4, 1, 2, 3]), dims)).toThrow(/col_idx\[1\] = 4 .*outside \[0, 4\)/);
    expect(() => gate(new Int32Array([0, 3, 2, 5]), new Int32Array([0, 3, 1, 2, 3]), dims)).toThrow(/row_ptr is not monotone: row_ptr\[2\] = 2/);
    expect(() => gate(new Int32Array([0, 2, 2, 4]), new Int32Array([0, 3, 1, 2, 3]), dims)).toThrow(/row_ptr\[3\] = 4 must equal nnzb 5/);
    expect(() => gate(new Int32Array([1, 2, 2, 5]), new Int32Array([0, 3, 1, 2, 3]), dims)).toThrow(/row_ptr\[0\] is 1/);
    expect(() => gate(new Int32Array([0, 2, 5]), new Int32Array([0, 3, 1, 2, 3]), dims)).toThrow(RangeError);
    expect(() => gate([0, 2, 2, 5] as never, new Int32Array([0, 3, 1, 2, 3]), dims)).toThrow(TypeError);
  });

  test('GPU block sides are enforced only on a CUDA context (the CPU takes any)', () => {
    const w = BlockSparseMatrix.fromBlockCsr([0, 1], [0], new Float32Array(3 * 5).fill(1), [3, 5], [3, 5], { context: cpuContext() });
    expect(w.blockShape).toEqual([3, 5]);
    w.dispose();
  });
});

describe('fromBlockCsr fuzz: random corruptions of valid block-CSR (seeded)', () => {
  /** A random valid block-CSR over a small grid. */
  function randomCsr(r: Rng) {
    const bm = r.int(1, 3);
    const bk = r.int(1, 3);
    const m = r.int(0, 12);
    const k = r.int(0, 12);
    const mb = Math.ceil(m / bm);
    const kb = Math.ceil(k / bk);
    const rowPtr = [0];
    const colIdx: number[] = [];
    for (let i = 0; i < mb; i++) {
      for (let c = 0; c < kb; c++) if (r.next() < 0.5) colIdx.push(c);
      rowPtr.push(colIdx.length);
    }
    return { rowPtr, colIdx, values: r.normals(colIdx.length * bm * bk), shape: [m, k] as [number, number], block: [bm, bk] as [number, number], mb, kb };
  }

  /** One random corruption (some leave the arrays valid: those must build). */
  function corrupt(r: Rng, o: ReturnType<typeof randomCsr>): string {
    const pick = <T>(a: T[]) => a[r.int(0, a.length - 1)]!;
    const idx = (a: unknown[]) => r.int(0, Math.max(0, a.length - 1));
    const value = () => pick([-1, 0, 1, 2, o.kb - 1, o.kb, o.kb + 1, o.colIdx.length, o.colIdx.length + 1, -(2 ** 31), 2 ** 31 - 1, r.int(-5, 20)]);
    const kind = r.int(0, 9);
    switch (kind) {
      case 0:
        o.rowPtr = o.rowPtr.slice(0, r.int(0, o.rowPtr.length - 1));
        return 'truncate rowPtr';
      case 1:
        o.colIdx = o.colIdx.slice(0, r.int(0, Math.max(0, o.colIdx.length - 1)));
        return 'truncate colIdx';
      case 2:
        o.rowPtr[idx(o.rowPtr)] = value();
        return 'rowPtr entry';
      case 3:
        if (o.colIdx.length) o.colIdx[idx(o.colIdx)] = value();
        return 'colIdx entry';
      case 4: {
        // swap two colIdx entries (unsorted when they differ inside a row)
        const a = idx(o.colIdx);
        const b = idx(o.colIdx);
        [o.colIdx[a], o.colIdx[b]] = [o.colIdx[b]!, o.colIdx[a]!];
        return 'swap colIdx';
      }
      case 5: {
        // duplicate a neighbour
        const a = idx(o.colIdx);
        if (a + 1 < o.colIdx.length) o.colIdx[a + 1] = o.colIdx[a]!;
        return 'duplicate colIdx';
      }
      case 6:
        o.values = o.values.subarray(0, Math.max(0, o.values.length - r.int(1, 3)));
        return 'short values';
      case 7:
        o.rowPtr.push(o.colIdx.length);
        return 'extra rowPtr';
      case 8:
        o.colIdx.push(r.int(0, o.kb));
        return 'extra colIdx';
      default: {
        // shift one row boundary
        const i = r.int(1, Math.max(1, o.rowPtr.length - 2));
        if (i < o.rowPtr.length) o.rowPtr[i] = o.rowPtr[i]! + pick([-1, 1]);
        return 'shift rowPtr';
      }
    }
  }

  test('3000 corruptions: invalid ones throw RangeError / TypeError naming rowPtr / colIdx / values; valid ones build', async () => {
    const { rng: r, seed } = rng('fuzz');
    const ctx = cpuContext();
    const gate = nativeGate;
    let rejected = 0;
    let built = 0;
    for (let iter = 0; iter < 3000; iter++) {
      const o = randomCsr(r);
      const what = corrupt(r, o);
      const ok = isValidCsr(o.rowPtr, o.colIdx, o.values.length, o.mb, o.kb, o.block[0] * o.block[1]);
      const where = `iteration ${iter} (${what}, seed ${seed}): rowPtr [${o.rowPtr}] colIdx [${o.colIdx}] grid ${o.mb}x${o.kb}`;
      let err: unknown;
      let w: BlockSparseMatrix | undefined;
      try {
        w = BlockSparseMatrix.fromBlockCsr(o.rowPtr, o.colIdx, o.values, o.shape, o.block, { context: ctx });
      } catch (e) {
        err = e;
      }
      if (ok) {
        if (err) throw new Error(`${where}: a valid CSR was rejected: ${String(err)}`);
        built++;
        w!.dispose();
        continue;
      }
      if (!err) throw new Error(`${where}: a malformed CSR was accepted`);
      if (!(err instanceof RangeError || err instanceof TypeError)) throw new Error(`${where}: wrong error class ${String(err)}`);
      if (!/(rowPtr|colIdx|values)(\[\d+\])? but received/.test((err as Error).message)) throw new Error(`${where}: message names no position: ${(err as Error).message}`);
      rejected++;
      // The native gate agrees on every structural corruption (lengths included; values are JS-only).
      const structural = o.values.length === o.colIdx.length * o.block[0] * o.block[1];
      if (structural) {
        expect(() => gate(Int32Array.from(o.rowPtr), Int32Array.from(o.colIdx), { rows: o.shape[0], cols: o.shape[1], bm: o.block[0], bk: o.block[1] })).toThrow(RangeError);
      }
    }
    // Both outcomes occur in numbers (the fuzz is not vacuous).
    expect(rejected).toBeGreaterThan(1500);
    expect(built).toBeGreaterThan(100);
  });
});
