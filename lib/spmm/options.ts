/**
 * Options of spmm and of the BlockSparseMatrix builders, their frozen defaults (the README API table is
 * generated from these), and the measured crossover densities behind `backend: 'auto'`.
 */
import type { Backend } from '../backend.js';
import type { Context } from '../context.js';
import type { FloatDType } from '../dtype.js';
import type { Stream } from '../stream.js';
import type { Tensor } from '../tensor.js';

/** Block sides the CUDA kernels are built for (each of bm, bk). The CPU takes any side >= 1. */
export const GPU_BLOCK_SIDES = [16, 32, 64] as const;

export type SpmmActivation = 'none' | 'relu' | 'gelu' | 'silu';
export const SPMM_ACTIVATIONS: readonly SpmmActivation[] = ['none', 'relu', 'gelu', 'silu'];

export type SpmmBackend = 'auto' | 'sparse' | 'dense';
export const SPMM_BACKENDS: readonly SpmmBackend[] = ['auto', 'sparse', 'dense'];

export interface SpmmOptions {
  /** Bias [M] added to every output row, in w's dtype, on w's context. Defaults to none. */
  bias?: Tensor;
  /**
   * Activation fused into the epilogue after the bias: "relu" (NaN stays NaN), "gelu" (exact erf form,
   * as torch.nn.GELU()), "silu", or "none". Defaults to "none".
   */
  activation?: SpmmActivation;
  /**
   * A preallocated output to write into and return: dims exactly [...x.dims[:-1], M], w's dtype and
   * context, sharing no memory with x or the bias. Defaults to a new tensor.
   */
  out?: Tensor;
  /**
   * "sparse": the block-CSR kernel; "dense": a dense linear on a dense copy of W materialised on first
   * use and cached on the matrix (M x K elements, freed by w.dispose()); "auto": the plan of `w.plan(N)`
   * (sparse when w.density <= the measured crossover density of the device, dtype, block rows and N,
   * see SPMM_CROSSOVER). Defaults to "auto".
   */
  backend?: SpmmBackend;
  /** Stream to run on (of x's context). Defaults to the context's default stream. */
  stream?: Stream;
}

export const SPMM_DEFAULTS = Object.freeze({
  bias: undefined as Tensor | undefined,
  activation: 'none' as SpmmActivation,
  out: undefined as Tensor | undefined,
  backend: 'auto' as SpmmBackend,
});

export interface BlockSparseFromDenseOptions {
  /**
   * Block shape [bm, bk] (rows of W per block, columns per block). CUDA: each side 16, 32 or 64; CPU:
   * any sides >= 1. Defaults to [32, 32].
   */
  blockShape?: readonly [number, number];
  /**
   * Keep a block when its largest |w| is greater than this (a block holding a NaN is always kept, so
   * a NaN weight propagates as it would in dense). Finite, >= 0. Defaults to 0 (drop all-zero blocks).
   */
  tolerance?: number;
  /**
   * Target block sparsity in [0, 1]: additionally drop the ceil(sparsity * blocks) blocks of lowest L2
   * norm (ties: the lower block index row * blocksPerRow + col is dropped first). Blocks below the
   * tolerance are dropped too, so the achieved sparsity is >= the target. Defaults to none (no pruning).
   */
  sparsity?: number;
  /** Stream the build is ordered on (of w's context). Defaults to the context's default stream. */
  stream?: Stream;
}

export const BLOCK_SPARSE_FROM_DENSE_DEFAULTS = Object.freeze({
  blockShape: Object.freeze([32, 32]) as readonly [number, number],
  tolerance: 0,
  sparsity: undefined as number | undefined,
});

export interface BlockSparseFromCsrOptions {
  /**
   * dtype of the values: a Float32Array converts to it (round to nearest even); a Uint16Array holds raw
   * "float16" / "bfloat16" bits and needs it; a Tensor must already have it. Defaults to the values'
   * dtype (Float32Array: "float32", Float16Array: "float16", Tensor: its dtype).
   */
  dtype?: FloatDType;
  /** Device context. Defaults to the values tensor's context, else `Context.default`. */
  context?: Context;
  /** Stream the uploads are ordered on. Defaults to the context's default stream. */
  stream?: Stream;
}

export const BLOCK_SPARSE_FROM_CSR_DEFAULTS = Object.freeze({
  dtype: undefined as FloatDType | undefined,
  context: undefined as Context | undefined,
});

/** The decision `backend: 'auto'` takes for one N bucket (see BlockSparseMatrix.plan). */
export interface SpmmPlan {
  /** The backend auto dispatch uses. */
  backend: 'sparse' | 'dense';
  /** Rows of X this plan covers: 1, or a power of two (N rounded up; 4096 stands for every N >= 4096). */
  nBucket: number;
  dtype: FloatDType;
  device: Backend;
  /** Device index (0 on the CPU). */
  deviceIndex: number;
  /** w.density. */
  density: number;
  /** Sparse is chosen when density <= this (1 = always sparse). */
  threshold: number;
}

/**
 * One crossover row: for N in (previous maxN, maxN] (maxN Infinity = the rest), sparse wins up to
 * `density`.
 */
export interface CrossoverRow {
  maxN: number;
  density: number;
}

/**
 * Block size classes of the crossover table: the geometric mean side sqrt(bm * bk) rounded up to one of
 * these (the sparse kernels pay a fixed cost per stored block and useful work per element, so the block
 * area decides how much sparsity pays for the overhead). CUDA blocks are >= 16, so CUDA uses 16 / 32 / 64.
 */
export const CROSSOVER_CLASSES = [1, 4, 8, 16, 32, 64] as const;
export type CrossoverClass = (typeof CROSSOVER_CLASSES)[number];

type CrossoverTable = Readonly<Record<'float32' | 'half', Readonly<Partial<Record<CrossoverClass, readonly CrossoverRow[]>>>>>;

const rows = (...r: Array<[number, number]>): readonly CrossoverRow[] => Object.freeze(r.map(([maxN, density]) => Object.freeze({ maxN, density })));

/**
 * Crossover densities of `backend: 'auto'`: sparse when w.density <= the value, measured as OUR sparse
 * kernel vs OUR dense_linear (the 'dense' backend; never another library). Rows are looked up by N
 * (N == 1 is the GEMV path on both backends). Values are rounded down from the measured crossing, so
 * 'auto' picks sparse only where it clearly wins.
 *
 * CUDA, float16 / bfloat16: H200, bf16, W 8192 x 8192, random block masks (cuda/spmm/NOTES.md,
 * 2026-11-28, final build). dense_linear: 2.02 ms at N = 4096, 0.198 ms at 256, 0.054 ms at 16. Sparse at
 * 50 / 75% block sparsity: 32x32: 1.169 / 0.626 ms (N 4096), 0.117 / 0.061 (256), 0.044 / 0.024 (16);
 * 64x64: 0.983 / 0.522, 0.092 / 0.056, 0.038 / 0.022. Sparse already wins at density 0.5 everywhere;
 * the line through the two points meets dense at: 32x32 0.89 (N 4096), 0.86 (256), 0.62 (16); 64x64
 * > 1 (4096, 256), 0.75 (16). Beyond 0.5 these are extrapolations, hence rounded down. 16x16 was not
 * measured: each stored block re-reads its X tile, twice the traffic per element of 32x32, so the 32x32
 * values are halved (an estimate; `npx sparse-kernels bench --op spmm` on a GPU prints the measured
 * sweep, the data to replace it with). N == 1: the GEMV is memory bound and the sparse one reads
 * density x the bytes (NOTES: 11 us at 90% sparsity), so sparse always.
 * CUDA, float32: both backends run the same SIMT kernel (dense = every block present), so sparse never
 * does more work: always sparse.
 *
 * CPU: this repository's development machine (2 cores of an AVX-512 x86-64 server, shared with other
 * jobs: interleaved runs, fastest of 5-9 repetitions, three sweeps; W 2048 x 2048, square blocks, N = 1,
 * 16, 512; 2026-11-29). Measured crossings (float32 | bfloat16):
 *   1x1:   N 1 ~0.015 | ~0.015   N 16 ~0.12 | ~0.16   N 512 ~0.15 | ~0.15
 *   4x4:   N 1 ~0.08  | ~0.05    N 16 ~0.4  | ~0.55   N 512 ~0.48 | ~0.5
 *   8x8:   N 1 ~0.17  | ~0.07    N 16 ~0.5  | ~0.55   N 512 ~0.4  | ~0.33
 *   16x16: N 1 ~0.2-0.45 | ~0.2  N 16 ~0.5  | ~0.6    N 512 ~0.55 | ~0.5
 *   32x32: N 1 ~0.45  | ~0.33    N 16 ~0.5  | ~0.65   N 512 ~0.52 | ~0.5
 *   64x64: N 1 ~0.5-0.9 | ~0.47  N 16 ~0.65 | ~0.7    N 512 ~0.7  | ~0.65
 * The CPU GEMV pays per block (and converts 16-bit weights block row by block row), hence the low N = 1
 * values for small blocks; at 32x32 / N = 512 the sparse kernel is 1.5-2.5x slower than dense at
 * density 1 and 6-7x faster at 0.1 (the spec's 0.25 default was for a vendor BLAS baseline).
 */
export const SPMM_CROSSOVER: Readonly<Record<Backend, CrossoverTable>> = Object.freeze({
  cuda: Object.freeze({
    half: Object.freeze({
      16: rows([1, 1], [64, 0.3], [Infinity, 0.4]),
      32: rows([1, 1], [64, 0.6], [Infinity, 0.8]),
      64: rows([1, 1], [64, 0.7], [Infinity, 1]),
    }),
    float32: Object.freeze({
      16: rows([Infinity, 1]),
      32: rows([Infinity, 1]),
      64: rows([Infinity, 1]),
    }),
  }),
  cpu: Object.freeze({
    float32: Object.freeze({
      1: rows([1, 0.01], [16, 0.1], [Infinity, 0.12]),
      4: rows([1, 0.07], [16, 0.35], [Infinity, 0.4]),
      8: rows([1, 0.15], [16, 0.45], [Infinity, 0.35]),
      16: rows([1, 0.2], [16, 0.45], [Infinity, 0.5]),
      32: rows([1, 0.45], [16, 0.45], [Infinity, 0.5]),
      64: rows([1, 0.5], [16, 0.6], [Infinity, 0.65]),
    }),
    half: Object.freeze({
      1: rows([1, 0.01], [16, 0.12], [Infinity, 0.12]),
      4: rows([1, 0.04], [16, 0.5], [Infinity, 0.45]),
      8: rows([1, 0.06], [16, 0.5], [Infinity, 0.3]),
      16: rows([1, 0.18], [16, 0.55], [Infinity, 0.45]),
      32: rows([1, 0.3], [16, 0.6], [Infinity, 0.45]),
      64: rows([1, 0.45], [16, 0.65], [Infinity, 0.6]),
    }),
  }),
});

/** The crossover class of a block shape (see CROSSOVER_CLASSES). */
export function crossoverClass(bm: number, bk: number): CrossoverClass {
  const side = Math.sqrt(bm * bk);
  return CROSSOVER_CLASSES.find((c) => side <= c) ?? 64;
}

/** The crossover density for one case (see SPMM_CROSSOVER). */
export function crossoverDensity(device: Backend, dtype: FloatDType, bm: number, bk: number, n: number): number {
  const table = SPMM_CROSSOVER[device][dtype === 'float32' ? 'float32' : 'half'];
  // CUDA blocks are >= 16 on each side; a smaller class can only come from the CPU table.
  const cls = crossoverClass(bm, bk);
  const list = table[cls] ?? table[16]!;
  for (const row of list) if (n <= row.maxN) return row.density;
  return list[list.length - 1]!.density;
}
