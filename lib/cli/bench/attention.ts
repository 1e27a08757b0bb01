/**
 * `npx sparse-kernels bench --op attention`: blockSparseAttention's benchmark matrix on the current
 * backend, with the peers a user would pick instead run in the same job (bench/peers/attention.py:
 * torch SDPA flash / cuDNN and FlexAttention with the same block masks on CUDA, numpy dense masked
 * attention on the CPU). Our masks and shapes are written to outDir for the peer script; the report
 * gives our time, TFLOP/s on computed blocks (4 * D * bs^2 per kept block pair per head, diagonal block
 * counted whole) and peer / ours ratios (> 1: we are faster).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { BlockLayout, blockSparseAttention } from '../../attention/index.js';
import { Context } from '../../context.js';
import { type FloatDType, toHalfBits } from '../../dtype.js';
import { Tensor } from '../../tensor.js';
import { type Row, type TimingOptions, formatTable, random, runPeerScript, timeOnStream, writeReport } from './harness.js';

export interface AttentionBenchOptions {
  /** A smaller matrix (one or two lengths, fewer reps) for a smoke run. Defaults to false. */
  quick?: boolean;
  /** Where to write the JSON report. Defaults to `<outDir>/attention.json`. */
  json?: string;
  /** Folder for the masks, the peer's input and output, and the report. Defaults to a folder under the OS temp dir. */
  outDir?: string;
  /** Run bench/peers/attention.py (python3 from SPARSE_KERNELS_PYTHON or PATH) in the same job. Defaults to true. */
  peers?: boolean;
}

interface LayoutCase {
  name: string;
  layout: BlockLayout;
  /** File (in outDir) of the uint8 mask [heads, T, T] the peer reads; none for dense causal. */
  maskFile?: string;
}

interface PeerResult {
  name: string;
  peer: string;
  ms?: number;
  blocks?: number;
  maskSource?: string;
  error?: string;
}

/**
 * A [n]-element input of normal values in `dtype`. Large inputs tile one random chunk (of a length that
 * does not divide a head, so heads differ): generating hundreds of millions of normals in JS would take
 * longer than the benchmark, and the timing does not depend on the values (never zeros).
 */
function inputData(n: number, dtype: FloatDType, seed: number): Float32Array | Uint16Array {
  const next = random(seed);
  const chunk = new Float32Array(Math.min(n, (1 << 22) + 4099));
  for (let i = 0; i < chunk.length; i++) {
    const u = Math.max(next(), 1e-12);
    chunk[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  }
  const src = dtype === 'float32' ? chunk : toHalfBits(chunk, dtype);
  const out = dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n);
  for (let i = 0; i < n; i += src.length) out.set(src.subarray(0, Math.min(src.length, n - i)), i);
  return out;
}

/** Random causal block mask [heads, T, T]: diagonal kept, earlier blocks kept with the probability that gives `density` of the causal blocks. */
function randomCausalMask(heads: number, t: number, density: number, seed: number): Uint8Array {
  const next = random(seed);
  const lower = (t * (t - 1)) / 2;
  const p = lower === 0 ? 0 : Math.min(1, Math.max(0, (density * (t * (t + 1)) / 2 - t) / lower));
  const mask = new Uint8Array(heads * t * t);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < t; i++) {
      const row = (h * t + i) * t;
      for (let j = 0; j < i; j++) mask[row + j] = next() < p ? 1 : 0;
      mask[row + i] = 1;
    }
  }
  return mask;
}

function layoutCases(n: number, heads: number, blockSize: 64 | 128, densities: number[], outDir: string): LayoutCase[] {
  const t = Math.ceil(n / blockSize);
  const cases: LayoutCase[] = [{ name: 'dense causal', layout: BlockLayout.denseCausal({ seqLen: n, blockSize }) }];
  for (const d of densities) {
    const mask = randomCausalMask(heads, t, d, 1000 + n + Math.round(d * 100));
    const maskFile = `attention_mask_N${n}_H${heads}_d${Math.round(d * 100)}.u8`;
    fs.writeFileSync(path.join(outDir, maskFile), mask);
    cases.push({ name: `random ${Math.round(d * 100)}%`, layout: BlockLayout.fromBlockMask(mask, { heads, queryLength: n, blockSize }), maskFile });
  }
  return cases;
}

/** Kept (query block, key block) pairs over all batch elements and query heads. */
function keptPairs(layout: BlockLayout, batch: number, headsQ: number): number {
  return layout.keptBlocks() * (batch / layout.batch) * (headsQ / layout.heads);
}

export async function runAttentionBench(opts: AttentionBenchOptions = {}): Promise<Row[]> {
  const quick = opts.quick ?? false;
  const outDir = path.resolve(opts.outDir ?? path.join(os.tmpdir(), 'sparse-kernels-bench-attention'));
  fs.mkdirSync(outDir, { recursive: true });
  const ctx = Context.default;
  const cuda = ctx.backend === 'cuda';
  const cfg = cuda
    ? {
        dtype: 'bfloat16' as const,
        headsQ: 32,
        // 32 KV heads, as the matrix; GQA (32/8) is timed by the PBS bench (each extra shape costs
        // FlexAttention a compile of its own in the peer run).
        headsKs: [32],
        headDim: 128,
        blockSize: 128 as const,
        lengths: quick ? [8192] : [8192, 32768, 65536],
        densities: [0.25, 0.11],
        timing: { warmup: 3, reps: 10 } as TimingOptions,
      }
    : {
        dtype: 'float32' as const,
        headsQ: 8,
        headsKs: [2],
        headDim: 128,
        blockSize: 128 as const,
        lengths: quick ? [2048] : [4096],
        densities: [0.25, 0.1],
        timing: (quick ? { warmup: 1, reps: 3 } : { warmup: 1, reps: 10 }) as TimingOptions,
      };
  const { dtype, headsQ, headDim: d, blockSize: bs } = cfg;
  const rows: Row[] = [];
  const peerCases: Record<string, unknown>[] = [];
  const stream = ctx.stream;

  for (const n of cfg.lengths) {
    const layouts = layoutCases(n, headsQ, bs, cfg.densities, outDir);
    const q = Tensor.from(inputData(headsQ * n * d, dtype, n), [1, headsQ, n, d], { dtype, context: ctx });
    for (const hk of cfg.headsKs) {
      const k = Tensor.from(inputData(hk * n * d, dtype, n + 1), [1, hk, n, d], { dtype, context: ctx });
      const v = Tensor.from(inputData(hk * n * d, dtype, n + 2), [1, hk, n, d], { dtype, context: ctx });
      await stream.synchronize(); // uploads done before timing
      let denseMs = NaN;
      for (const lc of layouts) {
        const name = `N${n} Hk${hk} ${lc.name}`;
        const t = await timeOnStream(stream, () => blockSparseAttention(q, k, v, lc.layout).dispose(), cfg.timing);
        const pairs = keptPairs(lc.layout, 1, headsQ);
        const flops = 4 * d * bs * bs * pairs;
        if (lc.name === 'dense causal') denseMs = t.medianMs;
        const row: Row = {
          N: n,
          Hq: headsQ,
          Hk: hk,
          layout: lc.name,
          density: Number(lc.layout.density().toFixed(4)),
          ms: t.medianMs,
          // The minimum shows the kernel without interference (a shared CPU machine is noisy).
          'min ms': t.minMs,
          [cuda ? 'TFLOP/s' : 'GFLOP/s']: flops / (t.medianMs * 1e-3) / (cuda ? 1e12 : 1e9),
          'dense/this': denseMs / t.medianMs,
        };
        rows.push(row);
        peerCases.push({ name, N: n, Hk: hk, layout: lc.maskFile ? 'mask' : 'dense_causal', maskFile: lc.maskFile, keptBlocks: pairs });
        process.stdout.write(`${name}: ${t.medianMs.toFixed(3)} ms\n`);
      }
      k.dispose();
      v.dispose();
    }
    q.dispose();
    for (const lc of layouts) lc.layout.dispose();
  }

  const casesFile = path.join(outDir, 'attention_cases.json');
  const peerFile = path.join(outDir, 'attention_peers.json');
  fs.writeFileSync(
    casesFile,
    `${JSON.stringify({ device: cuda ? 'cuda' : 'cpu', dtype, headsQ, headDim: d, blockSize: bs, batch: 1, timing: cfg.timing, cases: peerCases }, null, 2)}\n`,
  );
  let peerNote: string | undefined;
  let peers: PeerResult[] = [];
  if (opts.peers ?? true) {
    if (fs.existsSync(peerFile)) fs.unlinkSync(peerFile);
    if (cuda) await ctx.releaseCachedMemory(); // the peer process gets the whole GPU
    ({ results: peers, note: peerNote } = await runPeerScript<PeerResult>('attention', [casesFile, peerFile], peerFile));
  } else {
    peerNote = 'peers not run (peers: false)';
  }
  // peer / ours per case: > 1 means we are faster.
  peerCases.forEach((c, i) => {
    const row = rows[i]!;
    for (const p of peers.filter((x) => x.name === c.name)) {
      row[`${p.peer} ms`] = p.ms ?? null;
      row[`${p.peer}/this`] = p.ms === undefined ? null : p.ms / (row.ms as number);
      if (p.blocks !== undefined && p.blocks !== c.keptBlocks) row[`${p.peer} blocks`] = p.blocks; // a mismatch shows
    }
  });

  process.stdout.write(`\nblockSparseAttention, ${ctx.backend}, ${dtype}, D ${d}, block ${bs}\n${formatTable(rows)}\n`);
  if (peerNote) process.stdout.write(`peers: ${peerNote}\n`);
  const json = opts.json ?? path.join(outDir, 'attention.json');
  writeReport(json, 'blockSparseAttention', rows, {
    config: { ...cfg, quick },
    flops: '4 * D * blockSize^2 per kept (query block, key block) pair per query head; diagonal blocks counted whole',
    ratios: 'peer ms / our ms: > 1 means ours is faster',
    peers,
    peerNote,
  });
  process.stdout.write(`report: ${json}\n`);
  return rows;
}
