/**
 * PBS accuracy harness (bench/pbs-accuracy.mjs; also the inputs of `sparse-kernels bench --op pbs`).
 *
 * A generator of structured attention inputs, built so that the attention of a late query has known
 * parts, as measured in trained long-context heads: an attention sink (token 0), a local band (rotary-like
 * decay with distance), heavy-hitter keys scattered through the sequence, a diffuse background, and planted
 * needles (a key whose direction matches one specific late query strongly, at a random earlier position).
 * Relevant spans (passages of consecutive keys the queries align with) complete the picture: they are what
 * block pooling sees best, and what a permutation inside a segment can compact into fewer blocks.
 * Every part is set by its share of the attention mass of a query at the end of the sequence, so the
 * inputs mean the same at 8K and at 128K (with fixed logits a longer context would simply be more diffuse).
 *
 * The harness runs, per length: dense causal attention (our kernel, dense causal layout), PBS, and the same
 * selector without the permutation (permute: false, the paper's MeanPooling baseline), and reports the
 * output's relative error against dense, the density (kept / causal blocks) and the needle recall (the
 * needle's key block is computed for the query that must retrieve it).
 */
import { BlockLayout, blockSparseAttention } from '../attention/index.js';
import { Context } from '../context.js';
import type { FloatDType } from '../dtype.js';
import { Tensor } from '../tensor.js';
import { asDeviceLayout } from './device-layout.js';
import { type PbsOptions, type PbsResult, pbsAttention } from './index.js';

export interface StructuredInputOptions {
  /** Sequence length N. Required. */
  seqLen: number;
  /** Query heads. Defaults to 8. */
  headsQ?: number;
  /** KV heads (headsQ a multiple). Defaults to 2. */
  headsK?: number;
  /** Head dimension, at least 32 (the structure takes up to 67 coordinates, the rest is noise). Defaults to 128. */
  headDim?: number;
  /** Seed of every random draw. Defaults to 1. */
  seed?: number;
  /** Attention-mass share of the sink for the last query. Defaults to 0.25. */
  sinkShare?: number;
  /** Share of the local band. Defaults to 0.3. */
  localShare?: number;
  /** Share of the relevant spans (runs of consecutive keys the queries align with: passages). Defaults to 0.3. */
  spanShare?: number;
  /** Share of all scattered heavy-hitter keys together. Defaults to 0.1. */
  heavyShare?: number;
  /** Share of the diffuse background (every other key). Defaults to 0.05. */
  backgroundShare?: number;
  /** One heavy-hitter key per this many tokens on average. Defaults to 256. */
  heavyEvery?: number;
  /** One relevant span per this many tokens on average. Defaults to 2048. */
  spanEvery?: number;
  /** Tokens per relevant span. Defaults to 64. */
  spanLength?: number;
  /** Tokens of the local band's first octave (its half-width is a few of these). Defaults to 32. */
  localWidth?: number;
  /** Needles per KV head. Defaults to 2. */
  needlesPerHead?: number;
  /**
   * Keys per needle: 1 is the single planted key; more make a phrase (consecutive keys sharing the
   * needle's direction, as a needle sentence in needle-in-a-haystack tests). Defaults to 1.
   */
  needleLength?: number;
  /** Consecutive late queries that retrieve each needle (1: a single query; more: a question). Defaults to 1. */
  needleQueries?: number;
  /**
   * Share of its query's attention a needle takes, solved per needle on the rows of its own queries (the
   * mean over up to 8 of them when needleQueries > 1). Defaults to 0.5.
   */
  needleShare?: number;
  /** Needle queries lie in the last `needleWindow` tokens. Defaults to 128 (the proxy's rows). */
  needleWindow?: number;
  /** Scale of the sink's value vector (trained models' sinks carry small values). Defaults to 0.1. */
  sinkValueScale?: number;
  /**
   * 'exact': every noise value drawn; 'tiled': one random chunk repeated (fast, for benchmarks at 100M+
   * elements, where the values do not change the timing). Defaults to 'exact'.
   */
  noise?: 'exact' | 'tiled';
}

/**
 * A planted needle: keys [keyPos, keyPos + keyLength) of KV head `kvHead` are retrieved by queries
 * [queryPos - queryCount + 1, queryPos] of query head `queryHead`.
 */
export interface Needle {
  kvHead: number;
  queryHead: number;
  keyPos: number;
  keyLength: number;
  queryPos: number;
  queryCount: number;
}

export interface StructuredInputs {
  /** float32 [1, Hq, N, D], [1, Hk, N, D], [1, Hk, N, D] (batch 1). */
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  headsQ: number;
  headsK: number;
  seqLen: number;
  headDim: number;
  needles: Needle[];
}

// Coordinates: [0, 2F) band pairs, 2F sink, 2F + 1 heavy, 2F + 2 span, the rest noise and needle
// directions. The band is rotary-like: F pairs with wavelengths from localWidth growing geometrically to
// BAND_MAX_WAVELENGTH (block pooling averages such a band out beyond a few blocks, as it does RoPE's fast
// pairs). Its per-key fluctuation far from the query shrinks like 1/sqrt(F) relative to its peak, so F is
// as large as the head dim allows (keeping at least 16 free coordinates).
const BAND_MAX_WAVELENGTH = 2048;
const MAX_PAIRS = 32;
const pairsFor = (d: number) => Math.max(4, Math.min(MAX_PAIRS, Math.floor((d - 3 - 16) / 2)));

/** mulberry32 + Box-Muller. */
class Random {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  uniform(): number {
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = Math.imul(this.s ^ (this.s >>> 15), 1 | this.s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
  }
  fillNormal(out: Float32Array, scale: number): void {
    for (let i = 0; i < out.length; i += 2) {
      const r = Math.sqrt(-2 * Math.log(this.uniform())) * scale;
      const a = 2 * Math.PI * this.uniform();
      out[i] = r * Math.cos(a);
      if (i + 1 < out.length) out[i + 1] = r * Math.sin(a);
    }
  }
}

function noiseFill(out: Float32Array, rnd: Random, scale: number, tiled: boolean, salt: number): void {
  if (!tiled || out.length <= 1 << 22) {
    rnd.fillNormal(out, scale);
    return;
  }
  // A chunk whose length does not divide rows or heads, repeated from a salted offset.
  const chunk = new Float32Array((1 << 22) + 4099);
  rnd.fillNormal(chunk, scale);
  let at = (salt * 7919) % chunk.length;
  for (let i = 0; i < out.length; ) {
    const n = Math.min(chunk.length - at, out.length - i);
    out.set(chunk.subarray(at, at + n), i);
    i += n;
    at = 0;
  }
}

/** Wavelengths of the band pairs: from `width` to BAND_MAX_WAVELENGTH, geometric. */
function bandWavelengths(pairs: number, width: number): Float64Array {
  const ratio = (Math.max(BAND_MAX_WAVELENGTH, 2 * width) / width) ** (1 / Math.max(1, pairs - 1));
  return Float64Array.from({ length: pairs }, (_, f) => width * ratio ** f);
}

/** The band logit at distance delta relative to its coefficient: sum_f cos(2 pi delta / wavelength_f). */
function bandShape(delta: number, wavelengths: Float64Array): number {
  let s = 0;
  for (const w of wavelengths) s += Math.cos((2 * Math.PI * delta) / w);
  return s;
}

/** Local band: the keys within this many tokens of the query (for the shares). */
const LOCAL_WINDOW = 512;

/**
 * Structured q, k, v (batch 1, float32). The parts are calibrated on the last query of head 0: its
 * logits against every key are noise (free coordinates) + band (c * bandShape(distance)) + the part's own
 * coordinate, and the band coefficient and each part's logit are solved so that the masses split into the
 * requested shares (the band's coefficient by bisection, the others in closed form). The same amplitudes
 * then apply to every query and head (the parts are position-free except the band, which depends only on
 * the distance), so every late query sees about the same split.
 */
export function generateStructuredInputs(o: StructuredInputOptions): StructuredInputs {
  const n = o.seqLen;
  const hq = o.headsQ ?? 8;
  const hk = o.headsK ?? 2;
  const d = o.headDim ?? 128;
  if (d < 32) throw new RangeError(`Expected headDim >= 32 for the structured inputs but received ${d}`);
  const OCTAVES = pairsFor(d);
  const SINK = 2 * OCTAVES;
  const HEAVY = SINK + 1;
  const SPAN = HEAVY + 1;
  const FIRST_FREE = SPAN + 1;
  if (hq % hk !== 0) throw new RangeError(`Expected headsQ (${hq}) to be a multiple of headsK (${hk})`);
  const rnd = new Random(o.seed ?? 1);
  const tiled = o.noise === 'tiled';
  const shares = {
    sink: o.sinkShare ?? 0.25,
    local: o.localShare ?? 0.3,
    span: o.spanShare ?? 0.3,
    heavy: o.heavyShare ?? 0.1,
    background: o.backgroundShare ?? 0.05,
  };
  const heavyEvery = o.heavyEvery ?? 256;
  const spanEvery = o.spanEvery ?? 2048;
  const spanLength = Math.min(o.spanLength ?? 64, n);
  const width = o.localWidth ?? 32;
  const waves = bandWavelengths(OCTAVES, width);
  const scale = 1 / Math.sqrt(d);
  // A logit L between a query and a key part: both get sqrt(L sqrt(D)) along the part's coordinate.
  const amp = (logit: number) => Math.sqrt(Math.max(logit, 0) / scale);

  const q = new Float32Array(hq * n * d);
  const k = new Float32Array(hk * n * d);
  const v = new Float32Array(hk * n * d);
  noiseFill(q, rnd, 1, tiled, 1);
  noiseFill(k, rnd, 1, tiled, 2);
  noiseFill(v, rnd, 1, tiled, 3);
  const sinkValue = o.sinkValueScale ?? 0.1;
  for (let h = 0; h < hk; h++) for (let c = 0; c < d; c++) v[h * n * d + c]! *= sinkValue;

  // Which keys belong to which part, per KV head (spans may straddle block and segment boundaries).
  const kind = new Uint8Array(hk * n); // 0 ordinary, 1 sink, 2 span, 3 heavy
  for (let h = 0; h < hk; h++) {
    kind[h * n] = 1;
    for (let x = 0, spans = Math.max(1, Math.round(n / spanEvery)); x < spans; x++) {
      const start = Math.max(1, Math.min(n - spanLength, 128 + Math.floor(rnd.uniform() * Math.max(1, n - spanLength - 128))));
      kind.fill(2, h * n + start, h * n + start + spanLength);
    }
    for (let j = 1; j < n; j++) if (kind[h * n + j] === 0 && rnd.uniform() < 1 / heavyEvery) kind[h * n + j] = 3;
  }

  // Calibration on the last query of head 0: noise logits over the free coordinates.
  const last = n - 1;
  const noiseLogit = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let c = FIRST_FREE; c < d; c++) s += q[last * d + c]! * k[j * d + c]!;
    noiseLogit[j] = s * scale;
  }
  const band = new Float64Array(n);
  for (let j = 0; j < n; j++) band[j] = bandShape(last - j, waves);
  const masses = (c: number) => {
    let local = 0;
    let bg = 0;
    for (let j = 1; j < n; j++) {
      if (kind[j] !== 0) continue;
      const m = Math.exp(noiseLogit[j]! + c * band[j]!);
      if (last - j < LOCAL_WINDOW) local += m;
      else bg += m;
    }
    return { local, bg };
  };
  let lo = 0;
  let hi = 4;
  for (let it = 0; it < 50; it++) {
    const mid = (lo + hi) / 2;
    const m = masses(mid);
    if (m.local / m.bg < shares.local / shares.background) lo = mid;
    else hi = mid;
  }
  const c = lo;
  const bgMass = masses(c).bg;
  const partLogit = (kindId: number, share: number) => {
    let m = 0;
    // The sink carries no band (see setStructure).
    for (let j = 0; j < n; j++) if (kind[j] === kindId) m += Math.exp(noiseLogit[j]! + (kindId === 1 ? 0 : c * band[j]!));
    return m > 0 ? Math.log(((share / shares.background) * bgMass) / m) : 0;
  };
  const sinkAmp = amp(partLogit(1, shares.sink));
  const spanAmp = amp(partLogit(2, shares.span));
  const heavyAmp = amp(partLogit(3, shares.heavy));
  const bandAmp = Math.sqrt(c / scale);
  const cosT = new Float32Array(n * OCTAVES);
  const sinT = new Float32Array(n * OCTAVES);
  for (let i = 0; i < n; i++) {
    for (let f = 0; f < OCTAVES; f++) {
      const a = (2 * Math.PI * i) / waves[f]!;
      cosT[i * OCTAVES + f] = bandAmp * Math.cos(a);
      sinT[i * OCTAVES + f] = bandAmp * Math.sin(a);
    }
  }

  // Structure coordinates replace the noise there (so the logits are what the calibration solved).
  const setStructure = (buf: Float32Array, head: number, i: number, keyKind: number) => {
    const isKey = keyKind >= 0;
    const off = (head * n + i) * d;
    // The sink key carries no position: its weight must not swing with the query's distance to it.
    const noBand = keyKind === 1;
    for (let f = 0; f < OCTAVES; f++) {
      buf[off + 2 * f] = noBand ? 0 : cosT[i * OCTAVES + f]!;
      buf[off + 2 * f + 1] = noBand ? 0 : sinT[i * OCTAVES + f]!;
    }
    buf[off + SINK] = !isKey || keyKind === 1 ? sinkAmp : 0;
    buf[off + HEAVY] = !isKey || keyKind === 3 ? heavyAmp : 0;
    buf[off + SPAN] = !isKey || keyKind === 2 ? spanAmp : 0;
  };
  for (let h = 0; h < hk; h++) for (let j = 0; j < n; j++) setStructure(k, h, j, kind[h * n + j]!);
  for (let h = 0; h < hq; h++) for (let i = 0; i < n; i++) setStructure(q, h, i, -1);

  // Needles: a random unit direction in the free coordinates, added to the needle's key(s) and late
  // query(ies), with the logit that gives the needle `needleShare` of each such query's attention.
  const needles: Needle[] = [];
  const per = o.needlesPerHead ?? 2;
  const keyLength = Math.max(1, o.needleLength ?? 1);
  const queryCount = Math.max(1, o.needleQueries ?? 1);
  const window = Math.min(o.needleWindow ?? 128, n);
  const needleShare = o.needleShare ?? 0.5;
  const totalMass = bgMass / shares.background;
  // First guess of the amplitude, from the calibration query's total mass; solved per needle below.
  const needleGuess = amp(Math.log(((needleShare / (1 - needleShare)) * totalMass) / keyLength));
  const g = hq / hk;
  const dir = new Float32Array(d - FIRST_FREE);
  for (let h = 0; h < hk; h++) {
    for (let x = 0; x < per; x++) {
      // Away from the sink block and from the query's own neighbourhood (else the band finds it anyway).
      const queryPos = n - 1 - Math.floor(rnd.uniform() * Math.max(1, window - queryCount + 1));
      const first = queryPos - queryCount + 1;
      const span = Math.max(1, first - 2048 - keyLength);
      const keyPos = Math.min(first - keyLength, 256 + Math.floor(rnd.uniform() * span));
      if (keyPos <= 0 || first < 0) continue;
      const queryHead = h * g + Math.floor(rnd.uniform() * g);
      rnd.fillNormal(dir, 1);
      let norm = 0;
      for (const x2 of dir) norm += x2 * x2;
      norm = Math.sqrt(norm);
      const unit = Float64Array.from(dir, (x2) => x2 / norm);
      const needleAmp = needleAmplitude({ q, k, n, d, scale, firstFree: FIRST_FREE, queryHead, kvHead: h, keyPos, keyLength, first, queryPos, unit, share: needleShare, guess: needleGuess });
      for (let cc = 0; cc < dir.length; cc++) {
        const x3 = needleAmp * unit[cc]!;
        for (let t = 0; t < keyLength; t++) k[(h * n + keyPos + t) * d + FIRST_FREE + cc]! += x3;
        for (let t = 0; t < queryCount; t++) q[(queryHead * n + first + t) * d + FIRST_FREE + cc]! += x3;
      }
      needles.push({ kvHead: h, queryHead, keyPos, keyLength, queryPos, queryCount });
    }
  }
  return { q, k, v, headsQ: hq, headsK: hk, seqLen: n, headDim: d, needles };
}

/** What needleAmplitude needs: the inputs so far, the needle's place and its unit direction (free coordinates). */
interface NeedleFit {
  q: Float32Array;
  k: Float32Array;
  n: number;
  d: number;
  scale: number;
  firstFree: number;
  queryHead: number;
  kvHead: number;
  keyPos: number;
  keyLength: number;
  first: number;
  queryPos: number;
  unit: Float64Array;
  share: number;
  guess: number;
}

/**
 * The amplitude a (added as a * unit to the needle's keys and queries) at which the needle keys take
 * `share` of their queries' attention, on the actual rows. One amplitude from the calibration query's
 * total mass is not enough: the needle's logit also holds the band at the needle's distance, the noise
 * cross terms (q.unit, k.unit) and the query's own total mass, which together swing it by several units
 * (measured: shares from 0.4% to 99% for a 50% target at 4K), so a "needle" could be one its query hardly
 * reads. With a added, the logit of key j for query p is l_j + a (w_j + [j needle] (c_p + a scale)),
 * l_j = scale q_p.k_j, w_j = scale unit.k_j, c_p = scale q_p.unit; the share is solved by bisection
 * (mean over up to 8 evenly spread queries of a multi-query needle).
 */
function needleAmplitude(f: NeedleFit): number {
  const { q, k, n, d, scale, firstFree, unit } = f;
  const count = f.queryPos - f.first + 1;
  const picks = Math.min(count, 8);
  const rows: Array<{ l: Float64Array; w: Float64Array; c: number }> = [];
  for (let x = 0; x < picks; x++) {
    const p = f.first + Math.round(picks === 1 ? count - 1 : (x * (count - 1)) / (picks - 1));
    const qo = (f.queryHead * n + p) * d;
    let c = 0;
    for (let cc = 0; cc < unit.length; cc++) c += q[qo + firstFree + cc]! * unit[cc]!;
    const l = new Float64Array(p + 1);
    const w = new Float64Array(p + 1);
    for (let j = 0; j <= p; j++) {
      const ko = (f.kvHead * n + j) * d;
      let s = 0;
      for (let cc = 0; cc < d; cc++) s += q[qo + cc]! * k[ko + cc]!;
      let t = 0;
      for (let cc = 0; cc < unit.length; cc++) t += k[ko + firstFree + cc]! * unit[cc]!;
      l[j] = s * scale;
      w[j] = t * scale;
    }
    rows.push({ l, w, c: c * scale });
  }
  const shareAt = (a: number) => {
    let total = 0;
    for (const { l, w, c } of rows) {
      let m = -Infinity;
      const extra = a * (c + a * scale);
      for (let j = 0; j < l.length; j++) m = Math.max(m, l[j]! + a * w[j]! + (j >= f.keyPos && j < f.keyPos + f.keyLength ? extra : 0));
      let all = 0;
      let needle = 0;
      for (let j = 0; j < l.length; j++) {
        const isNeedle = j >= f.keyPos && j < f.keyPos + f.keyLength;
        const e = Math.exp(l[j]! + a * w[j]! + (isNeedle ? extra : 0) - m);
        all += e;
        if (isNeedle) needle += e;
      }
      total += needle / all;
    }
    return total / rows.length;
  };
  let lo = 0;
  let hi = Math.max(f.guess, 1);
  for (let it = 0; it < 20 && shareAt(hi) < f.share; it++) hi *= 1.5;
  for (let it = 0; it < 40; it++) {
    const mid = (lo + hi) / 2;
    if (shareAt(mid) < f.share) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export interface AccuracyOptions {
  /** Sequence lengths. Required. */
  lengths: number[];
  /** Context to run on. Defaults to Context.default. */
  context?: Context;
  /** Input dtype. Defaults to bfloat16 on CUDA, float32 on the CPU. */
  dtype?: FloatDType;
  headsQ?: number;
  headsK?: number;
  headDim?: number;
  /** PBS options shared by PBS and the baseline (threshold, blockSize, ...). Defaults to PBS_DEFAULTS. */
  pbs?: PbsOptions;
  /** Generator options (shares, needles...), seqLen and heads excluded. */
  inputs?: Omit<StructuredInputOptions, 'seqLen' | 'headsQ' | 'headsK' | 'headDim'>;
  /** Progress lines. Defaults to none. */
  log?: (line: string) => void;
}

export interface AccuracyRow {
  [key: string]: string | number;
  N: number;
  method: string;
  /** ||out - dense|| / ||dense|| over the whole output. */
  relError: number;
  /** Kept / causal blocks, over all heads. */
  density: number;
  /** Needles whose key block was computed for their query. */
  needlesKept: number;
  needles: number;
  /** Total time of the op (stats), ms. */
  ms: number;
}

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (Number.isNaN(x) !== Number.isNaN(y)) return Number.POSITIVE_INFINITY;
    num += (x - y) * (x - y);
    den += y * y;
  }
  return den === 0 ? (num === 0 ? 0 : Number.POSITIVE_INFINITY) : Math.sqrt(num / den);
}

/**
 * Needles whose key blocks are all computed for every query that must retrieve them, in the run's layout
 * (the blocks of the key slots the permutation moved the needle's keys to).
 */
async function needleRecall(r: PbsResult, needles: Needle[], n: number, blockSize: number, permHeads: number, headsQ: number): Promise<number> {
  const stats = r.stats!;
  const dev = asDeviceLayout(stats.layout);
  const lt = dev?._lt;
  if (!lt) throw new Error('needle recall needs the planner layout (fused path)');
  const [fc, fi, mc, mi] = await Promise.all([lt.fullCounts.toArray(), lt.fullIndices.toArray(), lt.maskCounts.toArray(), lt.maskIndices.toArray()]);
  const perm = stats.permutation && dev!.permuted ? await stats.permutation.toArray() : undefined;
  const t = Math.ceil(n / blockSize);
  const fStride = fi.length / fc.length;
  const mStride = mi.length / mc.length;
  let kept = 0;
  for (const nd of needles) {
    const hp = permHeads === headsQ ? nd.queryHead : nd.kvHead;
    // Key slot -> original key of this permutation head, inverted for the needle's keys.
    const blocks = new Set<number>();
    for (let key = nd.keyPos; key < nd.keyPos + nd.keyLength; key++) {
      let slot = key;
      if (perm) for (let x = 0; x < n; x++) if (perm[hp * n + x] === key) slot = x;
      blocks.add(Math.floor(slot / blockSize));
    }
    let all = true;
    for (let qpos = nd.queryPos - nd.queryCount + 1; qpos <= nd.queryPos && all; qpos++) {
      const row = nd.queryHead * t + Math.floor(qpos / blockSize);
      for (const blk of blocks) {
        let found = false;
        for (let x = 0; x < fc[row]! && !found; x++) found = fi[row * fStride + x] === blk;
        for (let x = 0; x < mc[row]! && !found; x++) found = mi[row * mStride + x] === blk;
        if (!found) all = false;
      }
    }
    if (all) kept++;
  }
  return kept;
}

/** Runs dense, PBS and the unpermuted baseline on structured inputs at each length. */
export async function runPbsAccuracy(o: AccuracyOptions): Promise<AccuracyRow[]> {
  const ctx = o.context ?? Context.default;
  const dtype: FloatDType = o.dtype ?? (ctx.backend === 'cuda' ? 'bfloat16' : 'float32');
  const hq = o.headsQ ?? 8;
  const hk = o.headsK ?? 2;
  const d = o.headDim ?? 128;
  const pbs = o.pbs ?? {};
  const blockSize = pbs.blockSize ?? 128;
  const permHeads = (pbs.gqaMode ?? 'shared') === 'shared' ? hk : hq;
  const log = o.log ?? (() => {});
  const rows: AccuracyRow[] = [];
  for (const n of o.lengths) {
    const t0 = Date.now();
    const inp = generateStructuredInputs({ ...o.inputs, seqLen: n, headsQ: hq, headsK: hk, headDim: d });
    const q = Tensor.from(inp.q, [1, hq, n, d], { dtype, context: ctx });
    const k = Tensor.from(inp.k, [1, hk, n, d], { dtype, context: ctx });
    const v = Tensor.from(inp.v, [1, hk, n, d], { dtype, context: ctx });
    log(`N ${n}: inputs in ${Date.now() - t0} ms, ${inp.needles.length} needles`);
    const layout = BlockLayout.denseCausal({ seqLen: n, blockSize });
    const m0 = ctx.stream.mark();
    const dense = blockSparseAttention(q, k, v, layout);
    const m1 = ctx.stream.mark();
    const denseOut = await dense.toFloat32Array();
    rows.push({ N: n, method: 'dense', relError: 0, density: 1, needlesKept: inp.needles.length, needles: inp.needles.length, ms: m1.elapsedSince(m0) });
    for (const [method, permute] of [
      ['pbs', true],
      ['meanpool (no permutation)', false],
    ] as Array<[string, boolean]>) {
      const r = pbsAttention(q, k, v, { ...pbs, permute, returnStats: true });
      const out = await r.out.toFloat32Array();
      const rep = await r.stats!.read();
      const kept = rep.fallback ? inp.needles.length : await needleRecall(r, inp.needles, n, blockSize, permHeads, hq);
      rows.push({
        N: n,
        method,
        relError: relErr(out, denseOut),
        density: rep.density,
        needlesKept: kept,
        needles: inp.needles.length,
        ms: rep.times.totalMs,
      });
      log(`N ${n} ${method}: rel. error ${rows[rows.length - 1]!.relError.toExponential(2)}, density ${rep.density.toFixed(3)}, needles ${kept}/${inp.needles.length}`);
      r.out.dispose();
      r.stats!.dispose();
    }
    for (const x of [q, k, v, dense]) x.dispose();
    layout.dispose();
  }
  return rows;
}
