/**
 * `npx sparse-kernels bench --op pbs`: pbsAttention's benchmark matrix on the current backend, with the
 * peers a user would pick instead run in the same job (bench/peers/pbs.py: torch SDPA cuDNN and flash,
 * dense causal, on the GPU; numpy dense causal attention on the CPU), keyed by the same `case`.
 *
 * Inputs are the structured attention inputs of lib/pbs/accuracy.ts (sink, local band, relevant spans,
 * heavy hitters, background; tiled noise at these sizes): PBS's time depends on the density its selection
 * reaches, and random normals would give near-uniform attention (density ~1), which no user has. The
 * density is reported next to every time.
 *
 * Per case: total ms (one pbsAttention call, timed with stream marks), the stage times (measured inside
 * the task with CUDA events / the worker clock, from separate runs with returnStats), the attention
 * kernel's time and its rate on the computed blocks, the density, the effective TFLOP/s (dense causal
 * FLOPs 4 N^2 D Hq / 2 over the total time), our own dense causal attention through the same kernel, and
 * the peers' times with peer / ours ratios (> 1: PBS is faster).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { BlockLayout, blockSparseAttention } from '../../attention/index.js';
import { Context } from '../../context.js';
import { generateStructuredInputs } from '../../pbs/accuracy.js';
import { type PbsStatsReport, pbsAttention } from '../../pbs/index.js';
import { Tensor } from '../../tensor.js';
import { type Row, type TimingOptions, formatTable, runPeerScript, timeOnStream, writeReport } from './harness.js';

export interface PbsBenchOptions {
  /** A smaller matrix (the shortest length, fewer reps) for a smoke run. Defaults to false. */
  quick?: boolean;
  /** Where to write the JSON report. Defaults to `<outDir>/pbs.json`. */
  json?: string;
  /** Folder for the cases file, the peer's output and the report. Defaults to a folder under the OS temp dir. */
  outDir?: string;
  /** Run bench/peers/pbs.py (python3 from SPARSE_KERNELS_PYTHON or PATH) in the same job. Defaults to true. */
  peers?: boolean;
}

interface PeerResult {
  case: string;
  peer: string;
  ms?: number;
  error?: string;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function runPbsBench(opts: PbsBenchOptions = {}): Promise<Row[]> {
  const quick = opts.quick ?? false;
  const outDir = path.resolve(opts.outDir ?? path.join(os.tmpdir(), 'sparse-kernels-bench-pbs'));
  fs.mkdirSync(outDir, { recursive: true });
  const ctx = Context.default;
  const cuda = ctx.backend === 'cuda';
  const cfg = cuda
    ? {
        dtype: 'bfloat16' as const,
        headsQ: 32,
        headsK: 8,
        headDim: 128,
        lengths: quick ? [16384] : [16384, 32768, 65536, 131072],
        timing: (quick ? { warmup: 2, reps: 5 } : { warmup: 3, reps: 10 }) as TimingOptions,
        statsReps: quick ? 3 : 5,
      }
    : {
        dtype: 'float32' as const,
        headsQ: 8,
        headsK: 2,
        headDim: 128,
        lengths: quick ? [4096] : [8192],
        timing: (quick ? { warmup: 1, reps: 3 } : { warmup: 1, reps: 5 }) as TimingOptions,
        statsReps: 3,
      };
  const { dtype, headsQ: hq, headsK: hk, headDim: d } = cfg;
  const stream = ctx.stream;
  const rows: Row[] = [];
  const cases: Array<{ case: string; N: number }> = [];

  for (const n of cfg.lengths) {
    const name = `N${n}`;
    const t0 = Date.now();
    const inp = generateStructuredInputs({ seqLen: n, headsQ: hq, headsK: hk, headDim: d, noise: 'tiled', seed: n });
    const q = Tensor.from(inp.q, [1, hq, n, d], { dtype, context: ctx });
    const k = Tensor.from(inp.k, [1, hk, n, d], { dtype, context: ctx });
    const v = Tensor.from(inp.v, [1, hk, n, d], { dtype, context: ctx });
    await stream.synchronize(); // uploads done before timing
    process.stdout.write(`${name}: inputs in ${Date.now() - t0} ms\n`);

    const total = await timeOnStream(stream, () => pbsAttention(q, k, v).dispose(), cfg.timing);
    // Stage times from the task's own events (same kernels, one task), medians over a few runs.
    const reports: PbsStatsReport[] = [];
    for (let r = 0; r < cfg.statsReps; r++) {
      const res = pbsAttention(q, k, v, { returnStats: true });
      reports.push(await res.stats!.read());
      res.out.dispose();
      res.stats!.dispose();
    }
    const st = (key: keyof PbsStatsReport['times']) => median(reports.map((x) => x.times[key]));
    const rep = reports[0]!;
    const kept = rep.keptBlocks.reduce((a, b) => a + b, 0);
    const layout = BlockLayout.denseCausal({ seqLen: n, blockSize: 128 });
    const dense = await timeOnStream(stream, () => blockSparseAttention(q, k, v, layout).dispose(), cfg.timing);
    layout.dispose();
    const denseFlops = 2 * n * n * d * hq; // 4 N^2 D H / 2 (causal)
    const unit = cuda ? 1e12 : 1e9;
    const attnMs = st('attentionMs');
    rows.push({
      case: name,
      N: n,
      ms: total.medianMs,
      'min ms': total.minMs,
      'proxy ms': st('proxyMs'),
      'permute ms': st('permuteMs'),
      'pool ms': st('poolMs'),
      'select ms': st('selectMs'),
      'stages ms': st('stagesMs'),
      'attention ms': attnMs,
      'stages %': (100 * st('stagesMs')) / st('totalMs'),
      density: Number(rep.density.toFixed(4)),
      [cuda ? 'eff. TFLOP/s' : 'eff. GFLOP/s']: denseFlops / (total.medianMs * 1e-3) / unit,
      // The kernel's rate on what it computed (own-segment blocks counted whole).
      [cuda ? 'kernel TFLOP/s' : 'kernel GFLOP/s']: (4 * d * 128 * 128 * kept) / (attnMs * 1e-3) / unit,
      'dense ms': dense.medianMs,
      'dense/pbs': dense.medianMs / total.medianMs,
    });
    cases.push({ case: name, N: n });
    process.stdout.write(`${name}: pbs ${total.medianMs.toFixed(3)} ms (density ${rep.density.toFixed(3)}), dense ${dense.medianMs.toFixed(3)} ms\n`);
    for (const x of [q, k, v]) x.dispose();
    await stream.synchronize();
  }

  const casesFile = path.join(outDir, 'pbs_cases.json');
  const peerFile = path.join(outDir, 'pbs_peers.json');
  fs.writeFileSync(
    casesFile,
    `${JSON.stringify({ device: cuda ? 'cuda' : 'cpu', dtype, batch: 1, headsQ: hq, headsK: hk, headDim: d, causal: true, timing: cfg.timing, cases }, null, 2)}\n`,
  );
  let peers: PeerResult[] = [];
  let peerNote: string | undefined;
  if (opts.peers ?? true) {
    if (fs.existsSync(peerFile)) fs.unlinkSync(peerFile);
    ({ results: peers, note: peerNote } = await runPeerScript<PeerResult>('pbs', [casesFile, peerFile], peerFile));
  } else {
    peerNote = 'peers not run (peers: false)';
  }
  // peer / ours per case: > 1 means PBS is faster.
  for (const row of rows) {
    for (const p of peers.filter((x) => x.case === row.case)) {
      row[`${p.peer}_ms`] = p.ms ?? null;
      row[`${p.peer}/pbs`] = p.ms === undefined ? null : p.ms / (row.ms as number);
    }
  }

  process.stdout.write(`\npbsAttention, ${ctx.backend}, ${dtype}, Hq ${hq} / Hk ${hk}, D ${d}, block 128, segment 256, threshold 0.9\n${formatTable(rows)}\n`);
  if (peerNote) process.stdout.write(`peers: ${peerNote}\n`);
  const json = opts.json ?? path.join(outDir, 'pbs.json');
  writeReport(json, 'pbsAttention', rows, {
    config: { ...cfg, quick, inputs: 'lib/pbs/accuracy.ts generateStructuredInputs defaults, tiled noise, seed = N' },
    flops: 'effective: dense causal 4 N^2 D Hq / 2 over the total time; kernel: 4 D 128^2 per computed block pair per query head over the attention time',
    ratios: 'peer ms / our ms: > 1 means PBS is faster',
    targets: cuda ? 'N 64K: cudnn/pbs >= 3; N 32K: stages % <= 10' : 'orientation only',
    peers,
    peerNote,
  });
  process.stdout.write(`report: ${json}\n`);
  return rows;
}
