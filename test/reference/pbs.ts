/**
 * float64 reference of PBS prefill (specs/attention.md 6.3), written from the spec and independent of
 * lib/pbs and of the kernels: the proxy scores, the segmented permutation, both block selectors, the
 * layout invariants, and attention restricted to the keys a layout + permutation keep (the spec's second
 * exactness test: "for any tau, the output equals dense softmax attention restricted to the union of
 * selected keys").
 *
 * Arrays are flat row-major: q [B, Hq, N, D], k/v [B, Hk, N, D], scores [B, Hp, P], perm [B, Hp, N].
 */

// jest runs tests in a vm context whose globals sit behind interceptors (a global lookup in a hot loop
// costs ~100x a local one): the hot loops use these aliases.
const { exp, log, floor, min, max: fmax, abs, fround } = Math;
const NEG_INF = -Infinity;

export interface PbsRefShape {
  batch: number;
  headsQ: number;
  headsK: number;
  seqLen: number;
  headDim: number;
}

export interface PbsRefOptions {
  blockSize: number;
  segmentSize: number;
  threshold: number;
  scale: number;
  gqaMode: 'shared' | 'perQueryHead';
  proxyRows: number;
  proxyCausal: boolean;
  forceSink: boolean;
  pool: 'mean' | 'max';
  antidiagonalStride: number;
}

export function permHeadsOf(s: PbsRefShape, gqaMode: 'shared' | 'perQueryHead'): number {
  return gqaMode === 'shared' ? s.headsK : s.headsQ;
}

/** Query heads that use permutation head hp, and the KV head it reads. */
function headsOfPermHead(s: PbsRefShape, gqaMode: 'shared' | 'perQueryHead', hp: number): { qHeads: number[]; kvHead: number } {
  const g = s.headsQ / s.headsK;
  if (gqaMode === 'shared') return { qHeads: Array.from({ length: g }, (_, i) => hp * g + i), kvHead: hp };
  return { qHeads: [hp], kvHead: floor(hp / g) };
}

const row = (a: ArrayLike<number>, off: number, d: number) => Array.from({ length: d }, (_, c) => a[off + c]!);
function dot(a: number[], b: ArrayLike<number>, off: number): number {
  let s = 0;
  for (let c = 0; c < a.length; c++) s += a[c]! * b[off + c]!;
  return s;
}

/** Stage 1: s[b, hp, j] = mean over the last R queries of softmax_j(scale * Qp_r . K_j), j < P. */
export function refProxyScores(q: ArrayLike<number>, k: ArrayLike<number>, s: PbsRefShape, o: PbsRefOptions): Float64Array {
  const { batch, headsQ, headsK, seqLen: n, headDim: d } = s;
  const hp = permHeadsOf(s, o.gqaMode);
  const p = floor(n / o.segmentSize) * o.segmentSize;
  const r = min(o.proxyRows, n);
  const out = new Float64Array(batch * hp * p);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < hp; h++) {
      const { qHeads, kvHead } = headsOfPermHead(s, o.gqaMode, h);
      const kBase = (b * headsK + kvHead) * n * d;
      for (let rr = 0; rr < r; rr++) {
        const pos = n - r + rr;
        // Mean over the group's query heads of the (scaled) query row.
        const qp = new Array<number>(d).fill(0);
        for (const hq of qHeads) {
          const off = ((b * headsQ + hq) * n + pos) * d;
          for (let c = 0; c < d; c++) qp[c]! += q[off + c]! / qHeads.length;
        }
        const logits = new Float64Array(p);
        let max = NEG_INF;
        for (let j = 0; j < p; j++) {
          logits[j] = o.proxyCausal && j > pos ? NEG_INF : o.scale * dot(qp, k, kBase + j * d);
          max = fmax(max, logits[j]!);
        }
        let sum = 0;
        for (let j = 0; j < p; j++) sum += (logits[j] = exp(logits[j]! - max));
        for (let j = 0; j < p; j++) out[(b * hp + h) * p + j]! += logits[j]! / sum / r;
      }
    }
  }
  return out;
}

/** Stage 2 from the given scores: per complete segment a stable argsort of -score (NaN = -inf). */
export function refPermutation(scores: ArrayLike<number>, rows: number, n: number, segment: number): Int32Array {
  const p = floor(n / segment) * segment;
  const perm = new Int32Array(rows * n);
  const key = (v: number) => (v !== v ? NEG_INF : v); // NaN sorts as -inf
  for (let r = 0; r < rows; r++) {
    for (let x = 0; x < n; x++) perm[r * n + x] = x;
    for (let g = 0; g < p; g += segment) {
      const idx = Array.from({ length: segment }, (_, j) => g + j);
      // Array.prototype.sort is stable: equal scores keep the lower index first.
      idx.sort((a, b) => key(scores[r * p + b]!) - key(scores[r * p + a]!) || a - b);
      for (let j = 0; j < segment; j++) perm[r * n + g + j] = idx[j]!;
    }
  }
  return perm;
}

export function invertPermutation(perm: ArrayLike<number>, rows: number, n: number): Int32Array {
  const inv = new Int32Array(rows * n);
  for (let r = 0; r < rows; r++) for (let x = 0; x < n; x++) inv[r * n + perm[r * n + x]!] = x;
  return inv;
}

/** One selected row of the reference, with how close it came to selecting one block more or less. */
export interface RefRow {
  full: number[];
  masked: number[];
  /** The prefix cut lies within round-off of the threshold, or at a tie: a kernel may differ by one block. */
  nearTie: boolean;
}

export interface RefLayout {
  rows: RefRow[]; // [B, Hq, T] flattened
  numBlocks: number;
}

/** Spec 6.3 step 6 on candidate probabilities prob[0:ncand) (blocks of earlier segments). */
function selectRow(prob: number[], ncand: number, i: number, o: PbsRefOptions, t: number, n: number, sink: number): RefRow {
  const perSeg = o.segmentSize / o.blockSize;
  const thr = fround(o.threshold); // the kernels compare in float32
  const flag = new Uint8Array(ncand);
  let nearTie = false;
  if (ncand > 0) {
    if (thr >= 1) flag.fill(1);
    else {
      const order = Array.from({ length: ncand }, (_, j) => j).sort((a, b) => prob[b]! - prob[a]! || a - b);
      let take = ncand;
      let cum = 0;
      const eps = 1e-4;
      for (let r = 0; r < ncand; r++) {
        const before = cum;
        cum += prob[order[r]!]!;
        if (cum >= thr) {
          take = r + 1;
          // Within round-off of the threshold on either side of the cut, or the cut splits near-equal values.
          const next = r + 1 < ncand ? prob[order[r + 1]!]! : NEG_INF;
          nearTie = abs(cum - thr) < eps || abs(before - thr) < eps || prob[order[r]!]! - next < eps * fmax(prob[order[r]!]!, 1e-30);
          break;
        }
      }
      if (take === ncand && cum < thr + 1e-4) nearTie = true; // "never reaches tau": all, or one short
      for (let r = 0; r < take; r++) flag[order[r]!] = 1;
    }
    if (o.forceSink && sink >= 0 && sink < ncand) flag[sink] = 1;
  }
  const pad = n % o.blockSize !== 0 ? t - 1 : -1;
  const full: number[] = [];
  const masked: number[] = [];
  for (let j = 0; j < ncand; j++) if (flag[j] && j !== pad) full.push(j);
  if (pad >= 0 && pad < ncand && flag[pad]) masked.push(pad);
  const s0 = floor(i / perSeg) * perSeg;
  for (let j = s0; j < min(s0 + perSeg, t); j++) masked.push(j);
  return { full, masked, nearTie };
}

function softmax(x: number[]): number[] {
  const m = fmax(...x);
  const e = x.map((v) => exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** Pool of rows `rowsOf` of a [*, D] array: mean over the valid rows, or max. */
function poolRows(a: ArrayLike<number>, offsets: number[], d: number, pool: 'mean' | 'max'): number[] {
  const out = row(a, offsets[0]!, d);
  for (let t = 1; t < offsets.length; t++) {
    for (let c = 0; c < d; c++) out[c] = pool === 'max' ? fmax(out[c]!, a[offsets[t]! + c]!) : out[c]! + a[offsets[t]! + c]!;
  }
  return pool === 'max' ? out : out.map((v) => v / offsets.length);
}

/** Stages 3-4, selector "meanpool", on the given permutation. */
export function refSelectMeanpool(q: ArrayLike<number>, k: ArrayLike<number>, perm: ArrayLike<number>, s: PbsRefShape, o: PbsRefOptions): RefLayout {
  const { batch, headsQ, headsK, seqLen: n, headDim: d } = s;
  const bs = o.blockSize;
  const t = Math.ceil(n / bs);
  const perSeg = o.segmentSize / bs;
  const hpN = permHeadsOf(s, o.gqaMode);
  const inv = invertPermutation(perm, batch * hpN, n);
  const rows: RefRow[] = [];
  for (let b = 0; b < batch; b++) {
    // kbar per permutation head: pool of the permuted key slots of each block.
    const kbar: number[][][] = [];
    for (let h = 0; h < hpN; h++) {
      const { kvHead } = headsOfPermHead(s, o.gqaMode, h);
      kbar.push(
        Array.from({ length: t }, (_, j) => {
          const offs: number[] = [];
          for (let x = j * bs; x < min((j + 1) * bs, n); x++) offs.push(((b * headsK + kvHead) * n + perm[(b * hpN + h) * n + x]!) * d);
          return poolRows(k, offs, d, o.pool);
        }),
      );
    }
    for (let hq = 0; hq < headsQ; hq++) {
      const h = o.gqaMode === 'shared' ? floor(hq / (headsQ / headsK)) : hq;
      const sink = floor(inv[(b * hpN + h) * n]! / bs);
      for (let i = 0; i < t; i++) {
        const offs: number[] = [];
        for (let x = i * bs; x < min((i + 1) * bs, n); x++) offs.push(((b * headsQ + hq) * n + x) * d);
        const qbar = poolRows(q, offs, d, o.pool);
        const ncand = floor(i / perSeg) * perSeg;
        const prob = ncand > 0 ? softmax(Array.from({ length: ncand }, (_, j) => o.scale * dot(qbar, kbar[h]![j]!, 0))) : [];
        rows.push(selectRow(prob, ncand, i, o, t, n, floor(i / perSeg) > 0 ? sink : -1));
      }
    }
  }
  return { rows, numBlocks: t };
}

/**
 * Stages 5 (selector "antidiagonal", XAttention scoring on the permuted keys): with stride X, reshaped row
 * m of query block i takes query positions iB + mX .. + X-1 and reshaped column c of key block j the key
 * slots jB + cX .. + X-1; L[m, c] = scale / X * sum_t q[iB + mX + X-1-t] . k[perm[jB + cX + t]] (query
 * positions >= N count as zero rows). Each valid row (first position < N) is soft-maxed over the candidate
 * columns; a block's probability is its share of the mass averaged over the valid rows.
 */
export function refSelectAntidiagonal(q: ArrayLike<number>, k: ArrayLike<number>, perm: ArrayLike<number>, s: PbsRefShape, o: PbsRefOptions): RefLayout {
  const { batch, headsQ, headsK, seqLen: n, headDim: d } = s;
  const bs = o.blockSize;
  const x = o.antidiagonalStride;
  const mr = bs / x;
  const t = Math.ceil(n / bs);
  const perSeg = o.segmentSize / bs;
  const hpN = permHeadsOf(s, o.gqaMode);
  const inv = invertPermutation(perm, batch * hpN, n);
  const rows: RefRow[] = [];
  for (let b = 0; b < batch; b++) {
    for (let hq = 0; hq < headsQ; hq++) {
      const h = o.gqaMode === 'shared' ? floor(hq / (headsQ / headsK)) : hq;
      const kvHead = floor(hq / (headsQ / headsK));
      const sink = floor(inv[(b * hpN + h) * n]! / bs);
      const qRow = (pos: number) => (pos < n ? row(q, ((b * headsQ + hq) * n + pos) * d, d) : new Array<number>(d).fill(0));
      const kOff = (slot: number) => ((b * headsK + kvHead) * n + perm[(b * hpN + h) * n + slot]!) * d;
      for (let i = 0; i < t; i++) {
        const ncand = floor(i / perSeg) * perSeg;
        const prob = new Array<number>(ncand).fill(0);
        if (ncand > 0 && fround(o.threshold) < 1) {
          let valid = 0;
          for (let m = 0; m < mr; m++) {
            if (i * bs + m * x >= n) break;
            valid++;
            const logits: number[] = [];
            for (let j = 0; j < ncand; j++) {
              for (let c = 0; c < mr; c++) {
                let acc = 0;
                for (let tt = 0; tt < x; tt++) acc += dot(qRow(i * bs + m * x + x - 1 - tt), k, kOff(j * bs + c * x + tt));
                logits.push((o.scale / x) * acc);
              }
            }
            const sm = softmax(logits);
            for (let j = 0; j < ncand; j++) for (let c = 0; c < mr; c++) prob[j]! += sm[j * mr + c]!;
          }
          for (let j = 0; j < ncand; j++) prob[j]! /= valid;
        }
        rows.push(selectRow(prob, ncand, i, o, t, n, floor(i / perSeg) > 0 ? sink : -1));
      }
    }
  }
  return { rows, numBlocks: t };
}

/** A layout's lists as rows [B, Hq, T] (full, masked), from tight arrays with the given row strides. */
export function listRows(
  l: { fullCounts: Int32Array; fullIndices: Int32Array; maskCounts: Int32Array; maskIndices: Int32Array },
  rows: number,
): Array<{ full: number[]; masked: number[] }> {
  const fs = rows === 0 ? 0 : l.fullIndices.length / rows;
  const ms = rows === 0 ? 0 : l.maskIndices.length / rows;
  return Array.from({ length: rows }, (_, r) => ({
    full: Array.from(l.fullIndices.subarray(r * fs, r * fs + l.fullCounts[r]!)),
    masked: Array.from(l.maskIndices.subarray(r * ms, r * ms + l.maskCounts[r]!)),
  }));
}

/**
 * The structural invariants of a PBS layout (rows [B, Hq, T]); returns the first violation or undefined.
 * Full: ascending blocks of earlier segments (no padding block); masked: the own segment (+ a selected
 * padding block, ascending); disjoint; the sink block present when forceSink and the row has candidates.
 */
export function checkLayoutInvariants(
  rows: Array<{ full: number[]; masked: number[] }>,
  o: { blockSize: number; segmentSize: number; seqLen: number; forceSink: boolean; sinkOf?: (row: number) => number },
): string | undefined {
  const t = Math.ceil(o.seqLen / o.blockSize);
  const perSeg = o.segmentSize / o.blockSize;
  const pad = o.seqLen % o.blockSize !== 0 ? t - 1 : -1;
  for (let r = 0; r < rows.length; r++) {
    const i = r % t;
    const s0 = floor(i / perSeg) * perSeg;
    const { full, masked } = rows[r]!;
    const ascending = (a: number[]) => a.every((v, x) => x === 0 || v > a[x - 1]!);
    if (!ascending(full) || !ascending(masked)) return `row ${r}: lists not ascending`;
    if (full.some((j) => j < 0 || j >= s0 || j === pad)) return `row ${r}: full block outside the earlier segments: [${full}]`;
    const own = Array.from({ length: min(s0 + perSeg, t) - s0 }, (_, x) => s0 + x);
    const extra = masked.filter((j) => j < s0);
    if (extra.some((j) => j !== pad) || masked.filter((j) => j >= s0).join() !== own.join()) {
      return `row ${r}: masked [${masked}] is not the own segment [${own}] (+ padding block ${pad})`;
    }
    if (full.some((j) => masked.includes(j))) return `row ${r}: a block in both lists`;
    if (o.forceSink && s0 > 0 && o.sinkOf) {
      const sink = o.sinkOf(r);
      if (!full.includes(sink) && !masked.includes(sink)) return `row ${r}: sink block ${sink} missing`;
    }
  }
  return undefined;
}

/**
 * Attention restricted to the keys a PBS layout keeps, float64: query i of (b, hq) sees key slot j when
 * j's block is a full block of its row, or a masked block with j < N and perm[j] <= i; slot j reads key
 * row perm[b, hp, j] (identity when perm is undefined). Returns out [B, Hq, N, D] and lse [B, Hq, N].
 */
export function refRestrictedAttention(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  s: PbsRefShape,
  scale: number,
  layout: { rows: Array<{ full: number[]; masked: number[] }>; lb: number; lh: number; blockSize: number },
  perm: ArrayLike<number> | undefined,
  permHeads: number,
): { out: Float64Array; lse: Float64Array } {
  const { batch, headsQ, headsK, seqLen: n, headDim: d } = s;
  const g = headsQ / headsK;
  const bs = layout.blockSize;
  const t = Math.ceil(n / bs);
  const out = new Float64Array(batch * headsQ * n * d);
  const lse = new Float64Array(batch * headsQ * n);
  const sc = new Float64Array(n);
  const rowOf = new Int32Array(n);
  const keyRow = new Int32Array(n);
  const acc = new Float64Array(d);
  for (let b = 0; b < batch; b++) {
    for (let hq = 0; hq < headsQ; hq++) {
      const hp = permHeads === headsQ ? hq : floor(hq / g);
      const kvBase = (b * headsK + floor(hq / g)) * n * d;
      for (let j = 0; j < n; j++) keyRow[j] = perm ? perm[(b * permHeads + hp) * n + j]! : j;
      for (let qb = 0; qb < t; qb++) {
        const lr = ((layout.lb === 1 ? 0 : b) * layout.lh + (layout.lh === 1 ? 0 : hq)) * t + qb;
        const { full, masked } = layout.rows[lr]!;
        for (let i = qb * bs; i < min((qb + 1) * bs, n); i++) {
          const qOff = ((b * headsQ + hq) * n + i) * d;
          // The kept key slots of query i: every slot of a full block; slots of a masked block whose
          // original position (through the permutation) is <= i.
          let cnt = 0;
          let max = NEG_INF;
          const visit = (blk: number, needMask: boolean) => {
            for (let j = blk * bs; j < min((blk + 1) * bs, n); j++) {
              const r = keyRow[j]!;
              if (needMask && r > i) continue;
              const kOff = kvBase + r * d;
              let x = 0;
              for (let c = 0; c < d; c++) x += q[qOff + c]! * k[kOff + c]!;
              x *= scale;
              sc[cnt] = x;
              rowOf[cnt++] = r;
              if (x > max) max = x;
            }
          };
          for (const blk of full) visit(blk, false);
          for (const blk of masked) visit(blk, true);
          if (cnt === 0) {
            lse[(b * headsQ + hq) * n + i] = NEG_INF; // out stays 0
            continue;
          }
          let sum = 0;
          acc.fill(0);
          for (let x = 0; x < cnt; x++) {
            const w = exp(sc[x]! - max);
            sum += w;
            const vOff = kvBase + rowOf[x]! * d;
            for (let c = 0; c < d; c++) acc[c]! += w * v[vOff + c]!;
          }
          for (let c = 0; c < d; c++) out[qOff + c] = acc[c]! / sum;
          lse[(b * headsQ + hq) * n + i] = max + log(sum);
        }
      }
    }
  }
  return { out, lse };
}

/** Dense causal attention (the threshold-1 and fallback target), float64. */
export function refDenseCausal(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, s: PbsRefShape, scale: number): { out: Float64Array; lse: Float64Array } {
  const t = Math.ceil(s.seqLen / 64);
  // Every block of every row masked, with the identity permutation: keep exactly j <= i.
  const rows = Array.from({ length: t }, () => ({ full: [] as number[], masked: Array.from({ length: t }, (_, j) => j) }));
  return refRestrictedAttention(q, k, v, s, scale, { rows, lb: 1, lh: 1, blockSize: 64 }, undefined, s.headsK);
}
