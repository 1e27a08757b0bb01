/** Relative Frobenius error ||a - b|| / ||b|| in float64; NaN anywhere gives Infinity. */
export function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const b = expected[i]!;
    if (Number.isNaN(a) !== Number.isNaN(b)) return Infinity;
    if (Number.isNaN(a)) continue;
    const d = a - b;
    num += d * d;
    den += b * b;
  }
  if (den === 0) return num === 0 ? 0 : Infinity;
  return Math.sqrt(num / den);
}

export const TOL = { float32: 1e-5, float16: 1e-2, bfloat16: 1e-2 } as const;

/** Asserts relError <= tol with a message carrying the label and seed. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, label: string): void {
  const err = relError(actual, expected);
  if (!(err <= tol)) {
    throw new Error(`${label}: relative error ${err.toExponential(3)} > ${tol.toExponential(1)}`);
  }
}

/** Max |a - b|. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
