/**
 * float64 reference of the block-sparse SpMM op (contract: src/ops/spmm.h), written from the definition
 * and independent of lib/spmm:
 *
 *   Y[n, m] = act( sum_k X[n, k] * W[m, k] + bias[m] )
 *
 * with W given densely (the block-CSR builders are checked against the meaning of their inputs: which
 * blocks a tolerance / a target sparsity keeps, what a block-CSR triple denotes). GELU is the exact form
 * x * Phi(x) with an erfc accurate to ~1e-15.
 */

export type Activation = 'none' | 'relu' | 'gelu' | 'silu';

/** erfc(x) in float64: series for |x| < 3, Lentz continued fraction beyond (relative error ~1e-15). */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < 3) {
    // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1)); the largest term is ~e^(x^2) < 1e4.
    let term = x;
    let sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  if (x > 27) return 0;
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1 / (x + (1/2) / (x + 1 / (x + (3/2) / (x + 2 / (x + ...))))).
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let i = 1; i < 500; i++) {
    const a = i / 2;
    d = x + a * d;
    d = Math.abs(d) < tiny ? tiny : d;
    c = x + a / c;
    c = Math.abs(c) < tiny ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

export function activate(v: number, act: Activation): number {
  switch (act) {
    case 'none':
      return v;
    case 'relu':
      return Number.isNaN(v) ? NaN : Math.max(v, 0);
    case 'gelu':
      return 0.5 * v * erfc(-v / Math.SQRT2);
    case 'silu':
      return v / (1 + Math.exp(-v));
  }
}

/**
 * Y [n, m] = act(X [n, k] . W [m, k]^T + bias). Every product is taken in float64 (a NaN / Inf in X meets
 * every weight of its column, as in dense; callers that model skipped blocks zero W there).
 */
export function referenceLinear(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  n: number,
  m: number,
  k: number,
  bias: ArrayLike<number> | undefined,
  act: Activation,
): Float64Array {
  const y = new Float64Array(n * m);
  const xr = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < k; c++) xr[c] = x[i * k + c]!;
    for (let r = 0; r < m; r++) {
      let s = 0;
      const wo = r * k;
      for (let c = 0; c < k; c++) s += xr[c]! * w[wo + c]!;
      y[i * m + r] = activate(s + (bias ? bias[r]! : 0), act);
    }
  }
  return y;
}

/**
 * Y for a block-sparse W: only stored blocks contribute, so X's non-finite values reach only the outputs
 * whose block row stores a block over their column (the contract: zero blocks are never read).
 */
export function referenceBlockSparse(
  x: ArrayLike<number>,
  dense: ArrayLike<number>,
  keep: Uint8Array,
  n: number,
  m: number,
  k: number,
  bm: number,
  bk: number,
  bias: ArrayLike<number> | undefined,
  act: Activation,
): Float64Array {
  const kb = Math.ceil(k / bk);
  const y = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < m; r++) {
      let s = 0;
      const br = Math.floor(r / bm);
      for (let c = 0; c < k; c++) {
        if (!keep[br * kb + Math.floor(c / bk)]) continue;
        s += x[i * k + c]! * dense[r * k + c]!;
      }
      y[i * m + r] = activate(s + (bias ? bias[r]! : 0), act);
    }
  }
  return y;
}

/**
 * Which blocks BlockSparseMatrix.fromDense keeps, from its documented meaning: max |w| > tolerance (NaN
 * kept), then, with a target sparsity s, drop the ceil(s * blocks) blocks of lowest L2 norm (ties: lower
 * index first; NaN norms rank last). s and the tolerance are float32 in the op, and the count allows 1e-7
 * relative slack for that rounding (0.3 of 10 blocks drops 3).
 */
export function referenceSelection(
  dense: ArrayLike<number>,
  m: number,
  k: number,
  bm: number,
  bk: number,
  tolerance: number,
  sparsity: number | undefined,
): Uint8Array {
  const mb = Math.ceil(m / bm);
  const kb = Math.ceil(k / bk);
  const total = mb * kb;
  const keep = new Uint8Array(total);
  const norm = new Float64Array(total);
  const tol = Math.fround(tolerance);
  for (let r = 0; r < mb; r++) {
    for (let c = 0; c < kb; c++) {
      let mx = 0;
      let nan = false;
      let sq = 0;
      // Row by row inside the block, as the op sums (so equal blocks tie exactly, and near-ties order alike).
      for (let i = r * bm; i < Math.min(m, (r + 1) * bm); i++) {
        let rowSq = 0;
        for (let j = c * bk; j < Math.min(k, (c + 1) * bk); j++) {
          const v = dense[i * k + j]!;
          if (Number.isNaN(v)) nan = true;
          mx = Math.max(mx, Math.abs(v));
          rowSq += v * v;
        }
        sq += rowSq;
      }
      keep[r * kb + c] = nan || mx > tol ? 1 : 0;
      norm[r * kb + c] = nan ? Infinity : sq;
    }
  }
  if (sparsity !== undefined && total > 0) {
    const s = Math.fround(sparsity);
    const drop = Math.min(total, Math.max(0, Math.ceil(s * total - 1e-7 * total)));
    const order = Array.from({ length: total }, (_, b) => b).sort((a, b) => norm[a]! - norm[b]! || a - b);
    for (let i = 0; i < drop; i++) keep[order[i]!] = 0;
  }
  return keep;
}

/** The block-CSR arrays of a dense matrix and a keep mask (values as float64, padding zero). */
export function referenceCsr(
  dense: ArrayLike<number>,
  keep: Uint8Array,
  m: number,
  k: number,
  bm: number,
  bk: number,
): { rowPtr: number[]; colIdx: number[]; values: Float64Array } {
  const mb = Math.ceil(m / bm);
  const kb = Math.ceil(k / bk);
  const rowPtr = [0];
  const colIdx: number[] = [];
  const vals: number[] = [];
  for (let r = 0; r < mb; r++) {
    for (let c = 0; c < kb; c++) {
      if (!keep[r * kb + c]) continue;
      colIdx.push(c);
      for (let i = 0; i < bm; i++) {
        for (let j = 0; j < bk; j++) {
          const gi = r * bm + i;
          const gj = c * bk + j;
          vals.push(gi < m && gj < k ? dense[gi * k + gj]! : 0);
        }
      }
    }
    rowPtr.push(colIdx.length);
  }
  return { rowPtr, colIdx, values: Float64Array.from(vals) };
}

/** The dense [m, k] matrix a block-CSR triple denotes (entries outside [m, k] ignored). */
export function denseFromCsr(
  rowPtr: ArrayLike<number>,
  colIdx: ArrayLike<number>,
  values: ArrayLike<number>,
  m: number,
  k: number,
  bm: number,
  bk: number,
): Float64Array {
  const out = new Float64Array(m * k);
  const mb = Math.ceil(m / bm);
  for (let r = 0; r < mb; r++) {
    for (let j = rowPtr[r]!; j < rowPtr[r + 1]!; j++) {
      const c = colIdx[j]!;
      for (let i = 0; i < bm; i++) {
        for (let q = 0; q < bk; q++) {
          const gi = r * bm + i;
          const gj = c * bk + q;
          if (gi < m && gj < k) out[gi * k + gj] = values[(j * bm + i) * bk + q]!;
        }
      }
    }
  }
  return out;
}

/** Whether block-CSR arrays are well formed (independent of lib/spmm's checks; for the fuzz test). */
export function isValidCsr(rowPtr: ArrayLike<number>, colIdx: ArrayLike<number>, valuesLength: number, mb: number, kb: number, blockElems: number): boolean {
  if (rowPtr.length !== mb + 1 || rowPtr[0] !== 0) return false;
  for (let r = 0; r < mb; r++) if (!(rowPtr[r + 1]! >= rowPtr[r]!)) return false;
  if (rowPtr[mb] !== colIdx.length) return false;
  for (let r = 0; r < mb; r++) {
    for (let j = rowPtr[r]!; j < rowPtr[r + 1]!; j++) {
      const c = colIdx[j]!;
      if (!Number.isInteger(c) || c < 0 || c >= kb) return false;
      if (j > rowPtr[r]! && c <= colIdx[j - 1]!) return false;
    }
  }
  return valuesLength === colIdx.length * blockElems;
}
