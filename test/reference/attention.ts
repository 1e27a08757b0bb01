/**
 * float64 reference of block-sparse attention (contract: src/ops/attention.h), written from the
 * definition and independent of lib/attention: which keys a query sees is a token-level predicate
 * `keep(b, h, i, j)` over key *slots* j, and slot j reads row `keyRow(b, h, j)` of K and V (the identity
 * unless a key permutation is given). Predicates are built from a causal rule, from a block mask, or
 * from raw index lists; so the layout builders are checked against the meaning of their inputs, not
 * against their own lists.
 */

export interface ReferenceProblem {
  /** q [batch, headsQ, seqQ, headDim], k/v [batch, headsK, seqK, headDim], as exact float values. */
  q: ArrayLike<number>;
  k: ArrayLike<number>;
  v: ArrayLike<number>;
  batch: number;
  headsQ: number;
  headsK: number;
  seqQ: number;
  seqK: number;
  headDim: number;
  scale: number;
}

/** Whether query i of (b, query head h) attends to key slot j. */
export type KeepFn = (b: number, h: number, i: number, j: number) => boolean;
/** Row of K/V that key slot j of (b, query head h) reads. */
export type KeyRowFn = (b: number, h: number, j: number) => number;

export interface ReferenceResult {
  /** [batch, headsQ, seqQ, headDim]; 0 for a row with no kept key. */
  out: Float64Array;
  /** [batch, headsQ, seqQ], natural log; -Infinity for a row with no kept key. */
  lse: Float64Array;
}

export function referenceAttention(p: ReferenceProblem, keep: KeepFn, keyRow: KeyRowFn = (_b, _h, j) => j): ReferenceResult {
  const { batch, headsQ, headsK, seqQ, seqK, headDim: d, scale } = p;
  const group = headsQ / headsK;
  const out = new Float64Array(batch * headsQ * seqQ * d);
  const lse = new Float64Array(batch * headsQ * seqQ);
  const scores = new Float64Array(seqK);
  const rows = new Int32Array(seqK);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < headsQ; h++) {
      const kvBase = (b * headsK + Math.floor(h / group)) * seqK * d;
      for (let i = 0; i < seqQ; i++) {
        const qOff = ((b * headsQ + h) * seqQ + i) * d;
        const oRow = (b * headsQ + h) * seqQ + i;
        let n = 0;
        let max = -Infinity;
        for (let j = 0; j < seqK; j++) {
          if (!keep(b, h, i, j)) continue;
          const r = keyRow(b, h, j);
          const kOff = kvBase + r * d;
          let s = 0;
          for (let c = 0; c < d; c++) s += p.q[qOff + c]! * p.k[kOff + c]!;
          s *= scale;
          scores[n] = s;
          rows[n++] = r;
          if (s > max) max = s;
        }
        if (n === 0) {
          lse[oRow] = -Infinity; // out stays 0
          continue;
        }
        let sum = 0;
        for (let t = 0; t < n; t++) {
          scores[t] = Math.exp(scores[t]! - max);
          sum += scores[t]!;
        }
        for (let t = 0; t < n; t++) {
          const w = scores[t]! / sum;
          const vOff = kvBase + rows[t]! * d;
          for (let c = 0; c < d; c++) out[qOff + c] = out[qOff + c]! + w * p.v[vOff + c]!;
        }
        lse[oRow] = max + Math.log(sum);
      }
    }
  }
  return { out, lse };
}

/** Plain attention: every key (non-causal) or keys j <= i (causal, equal lengths). */
export function keepPlain(causal: boolean): KeepFn {
  return causal ? (_b, _h, i, j) => j <= i : () => true;
}

/**
 * From a block mask [lb, lh, qBlocks, kBlocks] (nonzero = attend) with token-level meaning: query i
 * sees key j when its block pair is set, j exists, and (causal) j <= i. lb / lh of 1 broadcast.
 */
export function keepFromBlockMask(
  mask: Uint8Array,
  dims: { batch: number; heads: number; blockSize: number; queryLength: number; keyLength: number },
  causal: boolean,
): KeepFn {
  const qB = Math.ceil(dims.queryLength / dims.blockSize);
  const kB = Math.ceil(dims.keyLength / dims.blockSize);
  return (b, h, i, j) => {
    if (j >= dims.keyLength || (causal && j > i)) return false;
    const row = ((dims.batch === 1 ? 0 : b) * dims.heads + (dims.heads === 1 ? 0 : h)) * qB + Math.floor(i / dims.blockSize);
    return mask[row * kB + Math.floor(j / dims.blockSize)] !== 0;
  };
}

/**
 * From raw lists as the kernel contract defines them: all slots of a listed *full* block (that exist),
 * and the slots j of a listed *masked* block with j < seqK and, when causal, pos(j) <= i, where
 * pos(j) = keyPos(b, h, j) (the permutation value; j itself by default).
 */
export function keepFromLists(
  lists: { fullCounts: Int32Array; fullIndices: Int32Array; maskCounts: Int32Array; maskIndices: Int32Array },
  dims: { batch: number; heads: number; queryBlocks: number; keyBlocks: number; blockSize: number; seqK: number },
  causal: boolean,
  keyPos: KeyRowFn = (_b, _h, j) => j,
): KeepFn {
  const rows = dims.batch * dims.heads * dims.queryBlocks;
  // kind[row * keyBlocks + kb]: 0 not listed, 1 full, 2 masked.
  const kind = new Uint8Array(rows * dims.keyBlocks);
  const fStride = rows === 0 ? 0 : lists.fullIndices.length / rows;
  const mStride = rows === 0 ? 0 : lists.maskIndices.length / rows;
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < lists.fullCounts[r]!; t++) kind[r * dims.keyBlocks + lists.fullIndices[r * fStride + t]!] = 1;
    for (let t = 0; t < lists.maskCounts[r]!; t++) kind[r * dims.keyBlocks + lists.maskIndices[r * mStride + t]!] = 2;
  }
  return (b, h, i, j) => {
    if (j >= dims.seqK) return false;
    const row = ((dims.batch === 1 ? 0 : b) * dims.heads + (dims.heads === 1 ? 0 : h)) * dims.queryBlocks + Math.floor(i / dims.blockSize);
    const k = kind[row * dims.keyBlocks + Math.floor(j / dims.blockSize)];
    if (k === 1) return true;
    if (k === 2) return !causal || keyPos(b, h, j) <= i;
    return false;
  };
}
