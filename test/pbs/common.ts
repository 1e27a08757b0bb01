/**
 * Shared pieces of the PBS tests: fresh random inputs exactly representable in the tensor's dtype (so the
 * float64 reference sees what the kernels see), resolved reference options, the layout and permutation a
 * run used (from its stats), and output poisoning.
 */
import type { Context } from '../../lib/context';
import { type FloatDType, fromHalfBits, toHalfBits } from '../../lib/dtype';
import { type PbsOptions, type PbsStats, pbsAttention } from '../../lib/pbs';
import { Tensor } from '../../lib/tensor';
import type { Rng } from '../helpers/random';
import { type PbsRefOptions, type PbsRefShape, listRows, permHeadsOf, refRestrictedAttention } from '../reference/pbs';

export interface PbsInputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  /** The values as the tensors hold them. */
  qv: Float32Array;
  kv: Float32Array;
  vv: Float32Array;
  shape: PbsRefShape;
  dispose(): void;
}

function tensorOf(ctx: Context, values: Float32Array, dims: number[], dtype: FloatDType): { t: Tensor; exact: Float32Array } {
  if (dtype === 'float32') return { t: Tensor.from(values, dims, { context: ctx }), exact: values };
  const bits = toHalfBits(values, dtype);
  return { t: Tensor.from(bits, dims, { dtype, context: ctx }), exact: fromHalfBits(bits, dtype) };
}

// jest runs tests in a vm context whose globals (Math, Infinity) sit behind interceptors: a global lookup
// in a hot loop costs ~100x a local one, so the generators alias what they use.
const { sqrt, log, cos, sin, imul } = Math;
const TWO_PI = 2 * Math.PI;

/** n standard normals (mulberry32 + Box-Muller, never exactly zero in practice), seeded from `r`. */
export function normals(r: Rng, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = (r.next() * 4294967296) >>> 0 || 1;
  const uniform = () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = imul(s ^ (s >>> 15), 1 | s);
    t = (t + imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297; // (0, 1)
  };
  for (let i = 0; i < n; i += 2) {
    const rad = sqrt(-2 * log(uniform())) * scale;
    const a = TWO_PI * uniform();
    out[i] = rad * cos(a);
    if (i + 1 < n) out[i + 1] = rad * sin(a);
  }
  return out;
}

/**
 * Normal q, k, v (never zeros). `structure` adds a shared random direction to a few "heavy" keys and to
 * every query so the block scores are far from uniform (random normals alone give near-uniform attention,
 * where every threshold keeps almost everything and the selection is barely exercised).
 */
export function makeInputs(ctx: Context, r: Rng, shape: PbsRefShape, dtype: FloatDType, structure = true): PbsInputs {
  const { batch, headsQ, headsK, seqLen: n, headDim: d } = shape;
  const q = normals(r, batch * headsQ * n * d);
  const k = normals(r, batch * headsK * n * d);
  const v = normals(r, batch * headsK * n * d);
  if (structure) {
    const heavy = normals(r, batch * headsK * n);
    for (let bh = 0; bh < batch * headsK; bh++) {
      const dir = normals(r, d, 1 / sqrt(d));
      for (let j = 0; j < n; j++) {
        // About 3% of the keys (and key 0, a sink) get the direction.
        if (heavy[bh * n + j]! > 1.9 || j === 0) for (let c = 0; c < d; c++) k[(bh * n + j) * d + c]! += 6 * dir[c]!;
      }
      const g = headsQ / headsK;
      const b = Math.floor(bh / headsK);
      const hk = bh % headsK;
      for (let hq = hk * g; hq < (hk + 1) * g; hq++) {
        for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) q[((b * headsQ + hq) * n + i) * d + c]! += 3 * dir[c]!;
      }
    }
  }
  const qt = tensorOf(ctx, q, [batch, headsQ, n, d], dtype);
  const kt = tensorOf(ctx, k, [batch, headsK, n, d], dtype);
  const vt = tensorOf(ctx, v, [batch, headsK, n, d], dtype);
  return {
    q: qt.t,
    k: kt.t,
    v: vt.t,
    qv: qt.exact,
    kv: kt.exact,
    vv: vt.exact,
    shape,
    dispose() {
      qt.t.dispose();
      kt.t.dispose();
      vt.t.dispose();
    },
  };
}

/** PbsOptions resolved for the reference (defaults of PBS_DEFAULTS). */
export function refOptions(o: PbsOptions, headDim: number): PbsRefOptions {
  const blockSize = o.blockSize ?? 128;
  return {
    blockSize,
    segmentSize: o.segmentSize ?? 256,
    threshold: o.threshold ?? 0.9,
    scale: o.scale ?? 1 / Math.sqrt(headDim),
    gqaMode: o.gqaMode ?? 'shared',
    proxyRows: o.proxyRows ?? blockSize,
    proxyCausal: o.proxyCausal ?? false,
    forceSink: o.forceSink ?? true,
    pool: o.pool ?? 'mean',
    antidiagonalStride: o.antidiagonalStride ?? 8,
  };
}

/** The layout rows [B, Hq, T] and the permutation a run used (stats.layout lives on the device). */
export async function usedPlan(stats: PbsStats): Promise<{ rows: Array<{ full: number[]; masked: number[] }>; lb: number; lh: number; perm: Int32Array | undefined }> {
  const l = stats.layout as unknown as { toHost?: () => Promise<import('../../lib/attention').BlockLayout> };
  const host = l.toHost ? await l.toHost() : stats.layout;
  const perm = stats.permutation ? await stats.permutation.toArray() : undefined;
  const rows = listRows(host.toLists(), host.batch * host.heads * host.queryBlocks);
  if (host !== stats.layout) host.dispose();
  return { rows, lb: host.batch, lh: host.heads, perm };
}

/** The restricted-attention reference of a run, from the plan it reports. */
export async function referenceOfRun(inp: PbsInputs, o: PbsOptions, stats: PbsStats): Promise<{ out: Float64Array; lse: Float64Array; plan: Awaited<ReturnType<typeof usedPlan>> }> {
  const plan = await usedPlan(stats);
  const ro = refOptions(o, inp.shape.headDim);
  // permute: false runs the kernel without a gather (identity order); the reported permutation is the identity.
  const ref = refRestrictedAttention(
    inp.qv,
    inp.kv,
    inp.vv,
    inp.shape,
    ro.scale,
    { rows: plan.rows, lb: plan.lb, lh: plan.lh, blockSize: ro.blockSize },
    plan.perm,
    permHeadsOf(inp.shape, ro.gqaMode),
  );
  return { ...ref, plan };
}

/**
 * Best-effort poisoning: frees a NaN-filled buffer of the output's size just before the op, so the CPU
 * allocator tends to hand it back as the output; an unwritten row then shows as NaN, not a lucky zero.
 */
export async function poison(ctx: Context, elems: number, dtype: FloatDType): Promise<void> {
  const t = Tensor.from(new Float32Array(elems).fill(NaN), [elems], { dtype, context: ctx });
  await t.toArray();
  t.dispose();
}

/** pbsAttention with stats and lse, typed. */
export function runPbs(inp: PbsInputs, o: PbsOptions) {
  const r = pbsAttention(inp.q, inp.k, inp.v, { ...o, returnLse: true, returnStats: true });
  return { out: r.out, lse: r.lse!, stats: r.stats! };
}

/** lse comparison: -Infinity exactly where the reference has it, relative error elsewhere. */
export function lseError(actual: Float32Array, expected: Float64Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < expected.length; i++) {
    if (expected[i] === -Infinity || actual[i] === -Infinity) {
      if (actual[i] !== expected[i]) return Infinity;
      continue;
    }
    num += (actual[i]! - expected[i]!) ** 2;
    den += expected[i]! ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}
