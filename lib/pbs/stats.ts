/**
 * PbsStats: what pbsAttention reports with `returnStats` (specs/attention.md 6.3 step 8). The op returns
 * at once (tfjs semantics), so the numbers arrive through `await stats.read()`.
 */
import type { BlockLayout } from '../attention/layout.js';
import type { Stream, StreamMark } from '../stream.js';
import type { Tensor } from '../tensor.js';
import type { Outcome } from './problem.js';

/** Milliseconds per stage (0 for a stage that did not run). */
export interface PbsStageTimes {
  /** Key-importance proxy (stage 1). */
  proxyMs: number;
  /** Segmented permutation (stage 2; the identity with permute: false). */
  permuteMs: number;
  /** Block pooling (meanpool selector); a custom selector's time is all in selectMs. */
  poolMs: number;
  /** Block selection (or the custom selector call and whatever it enqueued on the op's stream). */
  selectMs: number;
  /** The sparse attention kernel. */
  attentionMs: number;
  /** proxy + permute + pool + select: the planning overhead. */
  stagesMs: number;
  /** Everything: stagesMs + attentionMs. */
  totalMs: number;
}

export interface PbsStatsReport {
  /** The dense causal fallback ran (N <= max(segmentSize, minSeqLen)). */
  fallback: boolean;
  /** Keys were permuted (false for the fallback and for permute: false). */
  permuted: boolean;
  /** 'meanpool', 'antidiagonal', 'custom' or 'dense'. */
  selector: string;
  batch: number;
  headsQ: number;
  blockSize: number;
  /** T = ceil(N / blockSize). */
  numBlocks: number;
  /** T (T + 1) / 2: the blocks dense causal attention computes per (batch, head). */
  causalBlocks: number;
  /** Computed (query block, key block) pairs per (batch, query head), [batch * Hq]: selected + own segment. */
  keptBlocks: Int32Array;
  /** keptBlocks / causalBlocks per (batch, query head), [batch * Hq]. */
  headDensity: Float64Array;
  /**
   * Sum of keptBlocks / (batch * Hq * causalBlocks). It can slightly exceed 1 near threshold 1: own-segment
   * blocks above the diagonal are computed (token-masked) too.
   */
  density: number;
  times: PbsStageTimes;
}

/** @internal where the numbers come from, per path. */
export interface StatsSource {
  fallback: boolean;
  permuted: boolean;
  selector: string;
  batch: number;
  headsQ: number;
  blockSize: number;
  numBlocks: number;
  /** Kept blocks per (batch, query head), [batch * Hq]; called by read() (after the op when it downloads). */
  kept: () => Promise<Int32Array>;
  /** Stage times from the task (ms: proxy, permute, pool, select, attention), already settled. */
  taskTimes?: Promise<Outcome<Float64Array>>;
  /** Extra phases timed with stream marks: [start, end] pairs keyed by stage. */
  marks?: Partial<Record<'select' | 'attention', [StreamMark, StreamMark]>>;
  /** Stream the marks are on; `fence` (enqueued after the last mark) completes after them. */
  stream: Stream;
  fence?: Tensor;
  layout: BlockLayout;
  permutation: Tensor<'int32'> | undefined;
  /** What dispose() frees (the planner's layout, the permutation, device kept counts). */
  owned: Array<{ dispose(): void }>;
}

export class PbsStats {
  /** The dense causal fallback ran. */
  readonly fallback: boolean;
  /**
   * The layout the kernel ran (a device-resident BlockLayout made by the planner, the custom selector's
   * layout, or the dense causal layout of the fallback). Its block indices address permuted key slots
   * when `permutation` is set.
   */
  readonly layout: BlockLayout;
  /** int32 [batch, Hp, N]: key slot j of (b, hp) held key permutation[b, hp, j]; undefined for the fallback. */
  readonly permutation: Tensor<'int32'> | undefined;
  private readonly _src: StatsSource;
  private _report: Promise<PbsStatsReport> | undefined;

  /** @internal */
  constructor(src: StatsSource) {
    this._src = src;
    this.fallback = src.fallback;
    this.layout = src.layout;
    this.permutation = src.permutation;
  }

  /** Waits for the op and returns the numbers (rejects with the op's error if it failed). */
  read(): Promise<PbsStatsReport> {
    this._report ??= this._read();
    return this._report;
  }

  private async _read(): Promise<PbsStatsReport> {
    const s = this._src;
    const ms = new Float64Array(5);
    if (s.taskTimes) {
      const r = await s.taskTimes;
      if (!r.ok) throw r.error;
      ms.set(r.value);
    }
    const kept = await s.kept();
    if (s.fence) {
      await s.fence.toArray({ stream: s.stream }); // completes after every mark below
      s.fence.dispose();
    }
    if (s.marks?.select) ms[3] = s.marks.select[1].elapsedSince(s.marks.select[0]);
    if (s.marks?.attention) ms[4] = s.marks.attention[1].elapsedSince(s.marks.attention[0]);
    const causalBlocks = (s.numBlocks * (s.numBlocks + 1)) / 2;
    const headDensity = new Float64Array(kept.length);
    let sum = 0;
    kept.forEach((k, i) => {
      headDensity[i] = causalBlocks === 0 ? 0 : k / causalBlocks;
      sum += k;
    });
    const stagesMs = ms[0]! + ms[1]! + ms[2]! + ms[3]!;
    return {
      fallback: s.fallback,
      permuted: s.permuted,
      selector: s.selector,
      batch: s.batch,
      headsQ: s.headsQ,
      blockSize: s.blockSize,
      numBlocks: s.numBlocks,
      causalBlocks,
      keptBlocks: Int32Array.from(kept),
      headDensity,
      density: kept.length === 0 || causalBlocks === 0 ? 0 : sum / (kept.length * causalBlocks),
      times: {
        proxyMs: ms[0]!,
        permuteMs: ms[1]!,
        poolMs: ms[2]!,
        selectMs: ms[3]!,
        attentionMs: ms[4]!,
        stagesMs,
        totalMs: stagesMs + ms[4]!,
      },
    };
  }

  /** Frees the device tensors the stats hold (the planner's layout and the permutation); call read() first. */
  dispose(): void {
    for (const o of this._src.owned) o.dispose();
    // The timing fence is freed by read(); without a read() it would wait for the garbage collector.
    this._src.fence?.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
