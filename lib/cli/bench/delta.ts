/**
 * `npx sparse-kernels bench --op delta`: DeltaLinear's benchmark matrix on the current backend, with the
 * peers a user would pick instead run in the same job (bench/peers/delta.py: torch dense linear and
 * gather-then-GEMM on CUDA, numpy on the CPU).
 *
 * Every case makes each step fire exactly a chosen set of inputs: the inputs alternate between two
 * vectors that differ (by 1.0, theta = 0.1) on each stream's active set and nowhere else. Sets are drawn
 * per stream ("independent": the union over 16 streams at 10% is ~81% of W) or shared by every stream
 * ("shared": the union is the per-stream fraction). Columns:
 *   us        our step time: stream marks around `steps` back-to-back steps, divided by steps (median of reps)
 *   dense_us  our own dense baseline on the same backend: the same layer with every input firing at
 *             every step (inputs alternating between two vectors that differ everywhere)
 *   union     fraction of W's columns some stream fired (the bytes a step must read)
 *   floor_us  (CUDA) the union's weight bytes at 4.15 TB/s (the H200's measured copy bandwidth)
 *   enqueue_us  host time to enqueue one step (when above `us`, the device waits for the host)
 *   <peer>_us and <peer>/ours: the peers' times and peer / ours (> 1: we are faster)
 * "dense pass" rows run the same case with denseFallbackDensity 0 (the masked dense pass instead of the
 * gather), the measurement behind DELTA_LINEAR_DEFAULTS.denseFallbackDensity.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { Context } from '../../context.js';
import { DeltaLinear, type DeltaState } from '../../delta/index.js';
import { type FloatDType, toHalfBits } from '../../dtype.js';
import { Tensor } from '../../tensor.js';
import { type Row, type TimingOptions, formatTable, random, runPeerScript, timeOnStream, writeReport } from './harness.js';

export interface DeltaBenchOptions {
  /** A smaller matrix (fewer steps and reps) for a smoke run. Defaults to false. */
  quick?: boolean;
  /** Where to write the JSON report. Defaults to `<outDir>/delta.json`. */
  json?: string;
  /** Folder for the active-set masks, the peer's input and output, and the report. Defaults to a folder under the OS temp dir. */
  outDir?: string;
  /** Run bench/peers/delta.py (python3 from SPARSE_KERNELS_PYTHON or PATH) in the same job. Defaults to true. */
  peers?: boolean;
}

interface Case {
  name: string;
  S: number;
  active: number;
  shared: boolean;
  densePass: boolean;
  maskFile: string;
}

interface PeerResult {
  case: string;
  peer: string;
  us?: number;
  error?: string;
}

function normals(n: number, next: () => number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(Math.max(next(), 1e-12))) * Math.cos(2 * Math.PI * next());
  return out;
}

/** A random subset of exactly round(p K) of [0, K) as a 0/1 mask. */
function activeSet(K: number, p: number, next: () => number): Uint8Array {
  const idx = Array.from({ length: K }, (_, i) => i);
  const n = Math.round(p * K);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(next() * (K - i));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  const m = new Uint8Array(K);
  for (let i = 0; i < n; i++) m[idx[i]!] = 1;
  return m;
}

function upload(v: Float32Array, dims: number[], dtype: FloatDType, ctx: Context): Tensor {
  return dtype === 'float32'
    ? Tensor.from(v, dims, { context: ctx, copy: true })
    : Tensor.from(toHalfBits(v, dtype), dims, { dtype, context: ctx, copy: true });
}

export async function runDeltaBench(opts: DeltaBenchOptions = {}): Promise<Row[]> {
  const quick = opts.quick ?? false;
  const outDir = path.resolve(opts.outDir ?? path.join(os.tmpdir(), 'sparse-kernels-bench-delta'));
  fs.mkdirSync(outDir, { recursive: true });
  const ctx = Context.default;
  const cuda = ctx.backend === 'cuda';
  const cfg = cuda
    ? { dtype: 'float16' as FloatDType, M: 4096, K: 11008, streams: [1, 16], fractions: [0.02, 0.1, 0.3], steps: quick ? 50 : 200, timing: { warmup: 2, reps: quick ? 5 : 10 } as TimingOptions }
    : { dtype: 'float32' as FloatDType, M: 1024, K: 2752, streams: [1, 16], fractions: [0.02, 0.1, 0.3], steps: quick ? 5 : 20, timing: { warmup: 2, reps: quick ? 3 : 7 } as TimingOptions };
  const { dtype, M, K, steps } = cfg;
  const theta = 0.1;
  // Every case fires on alternating steps between two vectors, so an even step count per rep keeps the
  // alternation going across reps.
  const stepsPerRep = steps % 2 === 0 ? steps : steps + 1;

  const cases: Case[] = [];
  for (const S of cfg.streams) {
    for (const shared of S === 1 ? [false] : [false, true]) {
      for (const p of cfg.fractions) {
        const name = `S${S} ${Math.round(p * 100)}%${S > 1 ? (shared ? ' shared' : ' independent') : ''}`;
        cases.push({ name, S, active: p, shared, densePass: false, maskFile: '' });
      }
    }
  }
  cases.push({ name: 'S1 30% dense pass', S: 1, active: 0.3, shared: false, densePass: true, maskFile: '' });
  cases.push({ name: 'S16 10% independent dense pass', S: 16, active: 0.1, shared: false, densePass: true, maskFile: '' });

  const next = random(12345);
  const wv = normals(M * K, next, 1 / Math.sqrt(K));
  const bv = normals(M, next, 0.5);
  const W = upload(wv, [M, K], dtype, ctx);
  const B = upload(bv, [M], dtype, ctx);
  const gather = new DeltaLinear(W, B, { threshold: theta });
  const densePass = new DeltaLinear(W, B, { threshold: theta, denseFallbackDensity: 0 });
  W.dispose();
  B.dispose();
  const stream = ctx.stream;
  const rows: Row[] = [];
  const denseUs = new Map<number, number>();

  for (const c of cases) {
    const S = c.S;
    // Active sets: one per stream, or one shared by all.
    const masks = new Uint8Array(S * K);
    const sharedSet = activeSet(K, c.active, next);
    for (let s = 0; s < S; s++) masks.set(c.shared || S === 1 ? sharedSet : activeSet(K, c.active, next), s * K);
    c.maskFile = `delta_mask_${c.name.replace(/[^A-Za-z0-9]+/g, '_')}.u8`;
    fs.writeFileSync(path.join(outDir, c.maskFile), masks);
    let union = 0;
    for (let k = 0; k < K; k++) {
      for (let s = 0; s < S; s++) {
        if (masks[s * K + k]) {
          union++;
          break;
        }
      }
    }
    const x0v = normals(S * K, next);
    const x1v = x0v.slice();
    for (let i = 0; i < S * K; i++) if (masks[i]) x1v[i] = x1v[i]! + 1;
    const xs = [upload(x0v, [S, K], dtype, ctx), upload(x1v, [S, K], dtype, ctx)];
    const layer = c.densePass ? densePass : gather;
    const state: DeltaState = layer.createState(S);
    const y = Tensor.empty([S, M], { dtype, context: ctx });
    let t = 0;
    const step = (st: DeltaState, x: Tensor) => layer.step(st, x, { out: y }).active.dispose();
    step(state, xs[0]!); // initialising step
    // Check the case does what it says before timing it: the next step fires exactly the active sets.
    const probe = layer.step(state, xs[1]!, { out: y }).active;
    const fired = await probe.toArray();
    probe.dispose();
    t = 2;
    for (let s = 0; s < S; s++) {
      let want = 0;
      for (let k = 0; k < K; k++) want += masks[s * K + k]!;
      if (fired[s] !== want) throw new Error(`delta bench ${c.name}: stream ${s} fired ${fired[s]} inputs, expected ${want}`);
    }
    // Host time to enqueue the steps (JS validation, N-API, task hand-off): when it exceeds the device
    // time per step, the device idles between steps and `us` measures the host, not the kernel.
    const enqueueUs: number[] = [];
    const timing = await timeOnStream(
      stream,
      () => {
        const h0 = performance.now();
        for (let i = 0; i < stepsPerRep; i++) step(state, xs[t++ % 2]!);
        enqueueUs.push(((performance.now() - h0) * 1e3) / stepsPerRep);
      },
      cfg.timing,
    );
    enqueueUs.sort((a, b) => a - b);
    const us = (timing.medianMs * 1e3) / stepsPerRep;
    if (!denseUs.has(S)) {
      // Our dense baseline: the same layer with every input firing at every step (the inputs alternate
      // between two vectors that differ by 1.0 everywhere).
      const all = x0v.map((v) => v + 1);
      const xd = [xs[0]!, upload(all, [S, K], dtype, ctx)];
      const dstate = gather.createState(S);
      let u = 0;
      gather.step(dstate, xd[u++ % 2]!, { out: y }).active.dispose();
      const dt = await timeOnStream(
        stream,
        () => {
          for (let i = 0; i < stepsPerRep; i++) gather.step(dstate, xd[u++ % 2]!, { out: y }).active.dispose();
        },
        cfg.timing,
      );
      denseUs.set(S, (dt.medianMs * 1e3) / stepsPerRep);
      dstate.dispose();
      xd[1]!.dispose();
    }
    const dense = denseUs.get(S)!;
    const row: Row = {
      case: c.name,
      S,
      active: c.active,
      union: Number((union / K).toFixed(3)),
      us,
      'min us': (timing.minMs * 1e3) / stepsPerRep,
      dense_us: dense,
      'dense/ours': dense / us,
      enqueue_us: enqueueUs[Math.floor(enqueueUs.length / 2)]!,
    };
    if (cuda) row.floor_us = (union * M * 2) / 4.15e12 * 1e6;
    rows.push(row);
    process.stdout.write(`${c.name}: ${us.toFixed(2)} us/step (dense ${dense.toFixed(2)} us)\n`);
    state.dispose();
    y.dispose();
    for (const x of xs) x.dispose();
  }
  gather.dispose();
  densePass.dispose();

  const casesFile = path.join(outDir, 'delta_cases.json');
  const peerFile = path.join(outDir, 'delta_peers.json');
  const timing = { warmup: cfg.timing.warmup ?? 2, reps: cfg.timing.reps ?? 10, steps: stepsPerRep };
  fs.writeFileSync(
    casesFile,
    `${JSON.stringify(
      {
        device: cuda ? 'cuda' : 'cpu',
        dtype,
        M,
        K,
        timing,
        cases: cases.map((c) => ({ case: c.name, S: c.S, active: c.active, shared: c.shared, maskFile: c.maskFile })),
      },
      null,
      2,
    )}\n`,
  );
  let peerNote: string | undefined;
  let peers: PeerResult[] = [];
  let peerMeta: Record<string, unknown> = {};
  if (opts.peers ?? true) {
    if (fs.existsSync(peerFile)) fs.unlinkSync(peerFile);
    if (cuda) await ctx.releaseCachedMemory(); // the peer process gets the whole GPU
    ({ results: peers, meta: peerMeta, note: peerNote } = await runPeerScript<PeerResult>('delta', [casesFile, peerFile, ...(cuda ? [] : ['--cpu'])], peerFile));
  } else {
    peerNote = 'peers not run (peers: false)';
  }
  // peer / ours per case: > 1 means we are faster.
  for (const row of rows) {
    for (const p of peers.filter((x) => x.case === row.case)) {
      row[`${p.peer}_us`] = p.us ?? null;
      row[`${p.peer}/ours`] = p.us === undefined ? null : p.us / (row.us as number);
    }
  }

  const title = `DeltaLinear step, ${ctx.backend}, ${dtype} W ${M} x ${K}, theta ${theta}`;
  process.stdout.write(`\n${title}\n${formatTable(rows)}\n`);
  if (peerNote) process.stdout.write(`peers: ${peerNote}\n`);
  const json = opts.json ?? path.join(outDir, 'delta.json');
  writeReport(json, 'DeltaLinear', rows, {
    config: { ...cfg, theta, stepsPerRep, quick },
    method:
      'us: stream marks around stepsPerRep back-to-back steps / stepsPerRep, median over reps; every step fires exactly the case\'s active sets (inputs alternate between two vectors differing by 1.0 there); dense_us: the same layer with every input firing at every step',
    ratios: 'peer us / our us and dense_us / us: > 1 means ours is faster',
    floor: cuda ? 'floor_us: the union of fired W columns (fp16 bytes) at 4.15 TB/s' : undefined,
    peers,
    peerMeta,
    peerNote,
  });
  process.stdout.write(`report: ${json}\n`);
  return rows;
}
