/**
 * The demo's workload sizes per backend. CPU: about a minute on 2 cores in total; CUDA: the shapes of
 * specs/anchors.md (long-context prefill, a large pruned layer, a 7B-class MLP projection); quick: a smoke
 * run of a few seconds (the CLI test) on either backend.
 */
import type { Backend } from '../../backend.js';
import type { FloatDType } from '../../dtype.js';

export interface PbsSizes {
  /** Sequence lengths of the speedup-vs-length sweep (threshold = `threshold`). */
  lengths: number[];
  /** The length the threshold sweep runs at (one of `lengths`; the density chart plots it). */
  headline: number;
  /** The default threshold (every length) and the extra thresholds run at `headline`. */
  threshold: number;
  thresholds: number[];
  headsQ: number;
  headsK: number;
  headDim: number;
  dtype: FloatDType;
  /** Generator noise: 'tiled' above ~100M elements, where drawing every value in JS would dominate the run. */
  noise: 'exact' | 'tiled';
  /** Timing rounds (median reported). */
  reps: number;
}

export interface SpmmSizes {
  /** W [m, k] (out x in), X [n, k]. */
  m: number;
  k: number;
  n: number;
  block: number;
  /** Block sparsities (fraction of blocks pruned), one row each. */
  sparsities: number[];
  dtype: FloatDType;
  /** Timing rounds (median reported). */
  reps: number;
}

export interface DeltaSizes {
  /** W [m, k] (out x in). */
  m: number;
  k: number;
  streams: number;
  frames: number;
  /** Frames per timed repetition (stream marks around `chunk` back-to-back steps). */
  chunk: number;
  threshold: number;
  dtype: FloatDType;
  /** Block side of the dense baseline's BlockSparseMatrix (all blocks stored; a CUDA side). */
  denseBlock: number;
}

export interface DemoSizes {
  pbs: PbsSizes;
  spmm: SpmmSizes;
  delta: DeltaSizes;
  /** Extra untimed runs of each configuration before timing, after its accuracy run (which warms up too). */
  warmup: number;
}

export function demoSizes(backend: Backend, quick: boolean): DemoSizes {
  const cuda = backend === 'cuda';
  const half: FloatDType = cuda ? 'bfloat16' : 'float32';
  if (quick) {
    return {
      pbs: { lengths: [1024, 2048], headline: 2048, threshold: 0.9, thresholds: [0.8, 0.95], headsQ: 2, headsK: 1, headDim: 64, dtype: half, noise: 'exact', reps: 3 },
      spmm: { m: 1024, k: 1024, n: 64, block: 32, sparsities: [0.75, 0.9], dtype: half, reps: 3 },
      delta: { m: 256, k: 512, streams: 2, frames: 48, chunk: 8, threshold: 0.1, dtype: cuda ? 'float16' : 'float32', denseBlock: 32 },
      warmup: cuda ? 1 : 0,
    };
  }
  if (cuda) {
    return {
      pbs: { lengths: [16384, 32768, 65536], headline: 65536, threshold: 0.9, thresholds: [0.8, 0.95], headsQ: 32, headsK: 8, headDim: 128, dtype: 'bfloat16', noise: 'tiled', reps: 10 },
      spmm: { m: 8192, k: 8192, n: 4096, block: 32, sparsities: [0.5, 0.75, 0.9, 0.95], dtype: 'bfloat16', reps: 10 },
      delta: { m: 4096, k: 11008, streams: 16, frames: 256, chunk: 16, threshold: 0.1, dtype: 'float16', denseBlock: 64 },
      warmup: 2,
    };
  }
  return {
    // The threshold sweep at 8K: at 16K each timing round costs ~2.5 s per configuration on 2 cores.
    pbs: { lengths: [4096, 8192, 16384], headline: 8192, threshold: 0.9, thresholds: [0.8, 0.95], headsQ: 4, headsK: 2, headDim: 128, dtype: 'float32', noise: 'exact', reps: 3 },
    // 7 rounds: a round costs ~0.1 s here, and the sparse runs are short enough for other processes' bursts to matter.
    spmm: { m: 4096, k: 4096, n: 256, block: 32, sparsities: [0.5, 0.75, 0.9, 0.95], dtype: 'float32', reps: 7 },
    // One stream: the dense baseline is then our GEMV path, the fastest dense path the CPU backend has
    // (its small-N GEMM, e.g. 4 rows, measured 5x slower per row than the GEMV here).
    delta: { m: 1024, k: 2752, streams: 1, frames: 300, chunk: 20, threshold: 0.1, dtype: 'float32', denseBlock: 32 },
    warmup: 0,
  };
}
