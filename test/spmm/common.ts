/**
 * Shared pieces of the SpMM tests: random block-sparse weights (never zeros inside kept blocks), inputs
 * rounded to their dtype (the reference sees exactly what the kernels see), and a poisoned output buffer.
 */
import type { Context } from '../../lib/context';
import { type FloatDType, fromHalfBits, toHalfBits } from '../../lib/dtype';
import { Tensor } from '../../lib/tensor';
import type { Rng } from '../helpers/random';

/** The values as the dtype stores them (float32 -> float16 / bfloat16 rounding to nearest even). */
export function roundTo(v: Float32Array, dtype: FloatDType): Float32Array {
  return dtype === 'float32' ? v : fromHalfBits(toHalfBits(v, dtype), dtype);
}

/** A tensor holding `v` in `dtype` (v must already be rounded for the reference to match exactly). */
export function tensorOf(ctx: Context, v: Float32Array, dims: number[], dtype: FloatDType): Tensor {
  return Tensor.from(v, dims, { dtype, context: ctx });
}

/** A random keep mask [mb * kb] with about `density` of the blocks set. */
export function randomMask(r: Rng, mb: number, kb: number, density: number): Uint8Array {
  const keep = new Uint8Array(mb * kb);
  for (let b = 0; b < keep.length; b++) keep[b] = r.next() < density ? 1 : 0;
  return keep;
}

/**
 * A dense W [m, k] that is nonzero exactly on the kept blocks (normal values, rounded to the dtype and
 * never exactly zero, so fromDense with tolerance 0 keeps exactly `keep`).
 */
export function blockSparseDense(r: Rng, m: number, k: number, bm: number, bk: number, keep: Uint8Array, dtype: FloatDType): Float32Array {
  const kb = Math.ceil(k / bk);
  const w = new Float32Array(m * k);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < k; j++) {
      if (!keep[Math.floor(i / bm) * kb + Math.floor(j / bk)]) continue;
      let v = r.normal() * 0.5;
      if (Math.abs(v) < 1e-3) v = v < 0 ? -0.25 : 0.25;
      w[i * k + j] = v;
    }
  }
  return roundTo(w, dtype);
}

/**
 * Best-effort poisoning: frees a NaN-filled buffer of the output's size just before the op, so the CPU
 * allocator (same size) tends to hand it back as the output. A row the kernel forgets to write then shows
 * up as NaN instead of as a lucky zero.
 */
export async function poison(ctx: Context, elems: number, dtype: FloatDType): Promise<void> {
  const t = Tensor.from(new Float32Array(Math.max(1, elems)).fill(NaN), [Math.max(1, elems)], { dtype, context: ctx });
  await t.toArray();
  t.dispose();
}

/** A preallocated output filled with NaN (the `out` option). */
export function nanTensor(ctx: Context, dims: number[], dtype: FloatDType): Tensor {
  const size = dims.reduce((a, b) => a * b, 1);
  return Tensor.from(new Float32Array(size).fill(NaN), dims, { dtype, context: ctx });
}
