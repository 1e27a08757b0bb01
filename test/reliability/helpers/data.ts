/**
 * Case data for the property tests: normal values (never zeros) drawn from a seed the case generated, so a
 * failing case replays with its data; tensors holding values exactly representable in their dtype (the
 * float64 references see what the kernels see); output poisoning.
 */
import type { Context } from '../../../lib/context';
import { type FloatDType, fromHalfBits, toHalfBits } from '../../../lib/dtype';
import { Tensor } from '../../../lib/tensor';

// jest's sandbox makes every global Math lookup slow (~100x): alias what the loops use.
const { sqrt, log, cos, imul } = Math;
const TWO_PI = 2 * Math.PI;

/** n normal values times `scale`, none of them within 0.05 * scale of zero (mulberry32 + Box-Muller). */
export function normalsFrom(seed: number, n: number, scale = 1): Float32Array {
  let s = (seed ^ 0x5bd1e995) >>> 0 || 1;
  const uniform = () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = imul(s ^ (s >>> 15), 1 | s);
    t = (t + imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297; // (0, 1)
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = sqrt(-2 * log(uniform())) * cos(TWO_PI * uniform());
    if (v > -0.05 && v < 0.05) v = v < 0 ? -0.5 : 0.5;
    out[i] = v * scale;
  }
  return out;
}

/** A tensor holding `values` in `dtype`, and the values exactly as it holds them. */
export function tensorOf(ctx: Context, values: Float32Array, dims: number[], dtype: FloatDType): { t: Tensor; exact: Float32Array } {
  if (dtype === 'float32') return { t: Tensor.from(values, dims, { context: ctx }), exact: values };
  const bits = toHalfBits(values, dtype);
  return { t: Tensor.from(bits, dims, { dtype, context: ctx }), exact: fromHalfBits(bits, dtype) };
}

/** The values rounded to `dtype`. */
export function roundTo(values: Float32Array, dtype: FloatDType): Float32Array {
  return dtype === 'float32' ? values : fromHalfBits(toHalfBits(values, dtype), dtype);
}

/**
 * Frees a NaN-filled buffer of `elems` elements just before an op allocates its output of the same size, so
 * the allocator tends to hand the NaNs back as the output: a value the kernel forgets to write shows up as
 * NaN rather than as a lucky zero.
 */
export async function poison(ctx: Context, elems: number, dtype: FloatDType): Promise<void> {
  const n = Math.max(1, elems);
  const t = Tensor.from(new Float32Array(n).fill(NaN), [n], { dtype, context: ctx });
  await t.toArray();
  t.dispose();
}

/** Whether every value is finite (outputs of finite inputs must be). */
export function allFinite(a: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return false;
  return true;
}
