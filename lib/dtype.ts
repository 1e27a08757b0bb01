/**
 * Element types, their native ids (src/core/dtype.h keeps the same table) and exact host conversions.
 * float16 and bfloat16 elements are carried as raw bits in `Uint16Array` (ORT convention); a
 * `Float16Array` is accepted where the runtime has one.
 */

export const DTYPES = ['float32', 'float16', 'bfloat16', 'int32', 'int8', 'uint8'] as const;
export type DType = (typeof DTYPES)[number];
export type FloatDType = 'float32' | 'float16' | 'bfloat16';
export const FLOAT_DTYPES: readonly FloatDType[] = ['float32', 'float16', 'bfloat16'];

/** Native ids: index in DTYPES. */
export const DTYPE_ID: Readonly<Record<DType, number>> = Object.freeze({
  float32: 0,
  float16: 1,
  bfloat16: 2,
  int32: 3,
  int8: 4,
  uint8: 5,
});

export const DTYPE_BYTES: Readonly<Record<DType, number>> = Object.freeze({
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int32: 4,
  int8: 1,
  uint8: 1,
});

/** The typed array `toArray()` returns for each dtype. */
export interface DTypeArrayMap {
  float32: Float32Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  int32: Int32Array;
  int8: Int8Array;
  uint8: Uint8Array;
}
export type TypedArrayOf<T extends DType> = DTypeArrayMap[T];
export type AnyTypedArray = DTypeArrayMap[DType];

export const DTYPE_ARRAY: { readonly [K in DType]: new (buffer: ArrayBuffer, byteOffset?: number, length?: number) => DTypeArrayMap[K] } =
  Object.freeze({
    float32: Float32Array,
    float16: Uint16Array,
    bfloat16: Uint16Array,
    int32: Int32Array,
    int8: Int8Array,
    uint8: Uint8Array,
  });

export const isFloatDType = (t: DType): t is FloatDType => t === 'float32' || t === 'float16' || t === 'bfloat16';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> bfloat16 bits, round to nearest even; NaN stays NaN. */
export function float32ToBFloat16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x0040) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** bfloat16 bits -> float32 (exact). */
export function bfloat16BitsToFloat32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}

/** float32 -> IEEE float16 bits, round to nearest even; overflow -> Inf, NaN stays NaN. */
export function float32ToFloat16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  const sign = (u >>> 16) & 0x8000;
  const abs = u & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00 | ((abs >>> 13) & 0x3ff);
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs >= 0x38800000) return (sign | ((abs + 0xfff + ((abs >>> 13) & 1) - 0x38000000) >>> 13)) & 0xffff;
  if (abs < 0x33000000) return sign;
  const exp = abs >>> 23;
  const mant = (abs & 0x7fffff) | 0x800000;
  const shift = 126 - exp;
  let h = mant >>> shift;
  const rem = mant & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rem > halfway || (rem === halfway && (h & 1) !== 0)) h += 1;
  return sign | h;
}

/** IEEE float16 bits -> float32 (exact). */
export function float16BitsToFloat32(h: number): number {
  const sign = (h & 0x8000) !== 0 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  if (exp === 0) return sign * mant * 2 ** -24;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Converts float values to raw float16 / bfloat16 bits. */
export function toHalfBits(values: ArrayLike<number>, dtype: 'float16' | 'bfloat16'): Uint16Array {
  const out = new Uint16Array(values.length);
  const conv = dtype === 'float16' ? float32ToFloat16Bits : float32ToBFloat16Bits;
  for (let i = 0; i < values.length; i++) out[i] = conv(values[i]!);
  return out;
}

/** Converts raw float16 / bfloat16 bits to float32 values. */
export function fromHalfBits(bits: ArrayLike<number>, dtype: 'float16' | 'bfloat16'): Float32Array {
  const out = new Float32Array(bits.length);
  const conv = dtype === 'float16' ? float16BitsToFloat32 : bfloat16BitsToFloat32;
  for (let i = 0; i < bits.length; i++) out[i] = conv(bits[i]!);
  return out;
}
