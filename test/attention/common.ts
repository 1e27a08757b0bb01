/**
 * Shared pieces of the attention tests: fresh random inputs (exactly representable in the tensor's
 * dtype, so the float64 reference sees what the kernel sees), random block masks and PBS-style
 * permutations, and comparisons that print the seed.
 */
import type { Context } from '../../lib/context';
import { type FloatDType, fromHalfBits, toHalfBits } from '../../lib/dtype';
import { Tensor } from '../../lib/tensor';
import type { ReferenceProblem } from '../reference/attention';
import type { Rng } from '../helpers/random';
import { relError } from '../helpers/tolerance';

export interface Shape {
  batch: number;
  headsQ: number;
  headsK: number;
  seqQ: number;
  /** Defaults to seqQ. */
  seqK?: number;
  headDim: number;
}

export interface Inputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  problem: ReferenceProblem;
  dispose(): void;
}

/** Values as the dtype stores them (float16/bfloat16 rounded), and the matching tensor. */
function tensorOf(ctx: Context, values: Float32Array, dims: number[], dtype: FloatDType): { t: Tensor; exact: Float32Array } {
  if (dtype === 'float32') return { t: Tensor.from(values, dims, { context: ctx }), exact: values };
  const bits = toHalfBits(values, dtype);
  return { t: Tensor.from(bits, dims, { dtype, context: ctx }), exact: fromHalfBits(bits, dtype) };
}

/** Normal q, k, v (never zeros); `spread` > 1 makes the softmax peakier. */
export function makeInputs(ctx: Context, r: Rng, s: Shape, dtype: FloatDType, spread = 1.5): Inputs {
  const seqK = s.seqK ?? s.seqQ;
  const qDims = [s.batch, s.headsQ, s.seqQ, s.headDim];
  const kDims = [s.batch, s.headsK, seqK, s.headDim];
  const q = tensorOf(ctx, r.normals(qDims.reduce((a, b) => a * b, 1), spread), qDims, dtype);
  const k = tensorOf(ctx, r.normals(kDims.reduce((a, b) => a * b, 1), spread), kDims, dtype);
  const v = tensorOf(ctx, r.normals(kDims.reduce((a, b) => a * b, 1)), kDims, dtype);
  return {
    q: q.t,
    k: k.t,
    v: v.t,
    problem: {
      q: q.exact,
      k: k.exact,
      v: v.exact,
      batch: s.batch,
      headsQ: s.headsQ,
      headsK: s.headsK,
      seqQ: s.seqQ,
      seqK,
      headDim: s.headDim,
      scale: 1 / Math.sqrt(s.headDim),
    },
    dispose() {
      q.t.dispose();
      k.t.dispose();
      v.t.dispose();
    },
  };
}

/** Random block mask [lb, lh, qB, kB] with about `density` of the entries set (causal: of the lower triangle, diagonal always set). */
export function randomBlockMask(r: Rng, lb: number, lh: number, qB: number, kB: number, density: number, causal: boolean): Uint8Array {
  const mask = new Uint8Array(lb * lh * qB * kB);
  for (let row = 0; row < lb * lh * qB; row++) {
    const qb = row % qB;
    for (let kb = 0; kb < kB; kb++) {
      if (causal && kb === qb) mask[row * kB + kb] = 1;
      else mask[row * kB + kb] = r.next() < density ? 1 : 0;
    }
  }
  return mask;
}

/**
 * A PBS-style layout: keys permuted within complete segments of `segment` tokens (the tail keeps its
 * order); each query block keeps its whole own segment as masked blocks and a random subset of the key
 * blocks of earlier segments as full blocks. Returns the lists (rows per query head) and the permutation
 * [batch, permHeads, N].
 */
export function pbsStyleLayout(
  r: Rng,
  o: { batch: number; headsQ: number; permHeads: number; n: number; blockSize: number; segment: number; density: number },
): {
  perm: Int32Array;
  lists: { fullCounts: Int32Array; fullIndices: Int32Array; maskCounts: Int32Array; maskIndices: Int32Array };
  queryBlocks: number;
  keyBlocks: number;
} {
  const { batch, headsQ, permHeads, n, blockSize: bs, segment } = o;
  const perm = new Int32Array(batch * permHeads * n);
  const complete = Math.floor(n / segment) * segment;
  for (let row = 0; row < batch * permHeads; row++) {
    const p = perm.subarray(row * n, (row + 1) * n);
    for (let j = 0; j < n; j++) p[j] = j;
    for (let s0 = 0; s0 < complete; s0 += segment) {
      for (let j = segment - 1; j > 0; j--) {
        const t = r.int(0, j);
        const x = p[s0 + j]!;
        p[s0 + j] = p[s0 + t]!;
        p[s0 + t] = x;
      }
    }
  }
  const qB = Math.ceil(n / bs);
  const kB = qB;
  const perSeg = segment / bs;
  const rows = batch * headsQ * qB;
  const fullIndices = new Int32Array(rows * kB);
  const maskIndices = new Int32Array(rows * kB);
  const fullCounts = new Int32Array(rows);
  const maskCounts = new Int32Array(rows);
  for (let row = 0; row < rows; row++) {
    const qb = row % qB;
    const segStart = Math.floor(qb / perSeg) * perSeg;
    let f = 0;
    for (let kb = 0; kb < segStart; kb++) if (r.next() < o.density) fullIndices[row * kB + f++] = kb;
    let m = 0;
    for (let kb = segStart; kb < Math.min(segStart + perSeg, kB); kb++) maskIndices[row * kB + m++] = kb;
    fullCounts[row] = f;
    maskCounts[row] = m;
  }
  return { perm, lists: { fullCounts, fullIndices, maskCounts, maskIndices }, queryBlocks: qB, keyBlocks: kB };
}

/** lse comparison: -Infinity exactly where the reference has it, relative error elsewhere. */
export function expectLseClose(actual: Float32Array, expected: Float64Array, tol: number, label: string): void {
  const a: number[] = [];
  const e: number[] = [];
  for (let i = 0; i < expected.length; i++) {
    if (expected[i] === -Infinity || actual[i] === -Infinity) {
      if (actual[i] !== expected[i]) throw new Error(`${label}: lse[${i}] = ${actual[i]} but the reference is ${expected[i]}`);
      continue;
    }
    a.push(actual[i]!);
    e.push(expected[i]!);
  }
  const err = relError(a, e);
  if (!(err <= tol)) throw new Error(`${label}: lse relative error ${err.toExponential(3)} > ${tol.toExponential(1)}`);
}

