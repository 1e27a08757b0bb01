/**
 * The `bench --op <op>` table: which module runs each op's benchmark matrix and the function it exports
 * (`run<Op>Bench(opts: {quick?, json?, outDir?}): Promise<Row[]>`). The CLI imports a module only when
 * its op is asked for.
 */
export const BENCHES: Readonly<Record<string, { module: string; fn: string }>> = Object.freeze({
  attention: { module: './bench/attention.js', fn: 'runAttentionBench' },
  pbs: { module: './bench/pbs.js', fn: 'runPbsBench' },
  spmm: { module: './bench/spmm.js', fn: 'runSpmmBench' },
  delta: { module: './bench/delta.js', fn: 'runDeltaBench' },
});
