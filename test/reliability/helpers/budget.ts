/**
 * The generated-case budget of the reliability suite: the issue asks for at least 100,000 generated cases
 * per CI run. Each property file asserts (in its afterAll) that it generated at least its minimum here, and
 * budget.test.ts asserts that the minimums add up to the total, so the suite cannot quietly shrink below it.
 * Per-file minimums (rather than one counter shared through a file) keep the check independent of the order
 * in which jest's workers run the files.
 */
export const SUITE_MINIMUM_CASES = 100_000;

export const CASE_MINIMUMS = Object.freeze({
  /** runtime.property.test.ts: Context, Stream, Tensor. */
  runtime: 26_000,
  /** attention.property.test.ts: BlockLayout builders, blockSparseAttention. */
  attention: 22_000,
  /** spmm.property.test.ts: BlockSparseMatrix builders, spmm. */
  spmm: 20_000,
  /** pbs.property.test.ts: pbsAttention and its stages. */
  pbs: 10_000,
  /** delta.property.test.ts: DeltaLinear, DeltaState. */
  delta: 16_000,
  /** native-boundary.test.ts: raw native calls in a child process (CPU run). */
  native: 20_000,
});

export type CaseArea = keyof typeof CASE_MINIMUMS;
