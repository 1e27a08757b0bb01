#!/usr/bin/env node
// PBS accuracy harness: dense vs PBS vs the unpermuted MeanPooling baseline on structured inputs (sink,
// local band, heavy hitters, background, planted needles; lib/pbs/accuracy.ts), through the built package.
//
//   node bench/pbs-accuracy.mjs --lengths 8192,16384,32768,65536,131072 --device cuda
//   node bench/pbs-accuracy.mjs --lengths 8192,16384 --device cpu --heads 2/1
//
// Options: --lengths a,b,c (required)  --device cuda|cpu (default: the library's choice)
//          --heads Hq/Hk (default 8/2)  --dim D (128)  --threshold tau (0.9)  --gqa shared|perQueryHead
//          --pool mean|max (mean)  --selector meanpool|antidiagonal (meanpool)  --proxy-rows R (blockSize)
//          --background share (0.05)  --needles per KV head (2)  --seed s (1)
//          --inputs '{"heavyEvery":16,"needleLength":16}' (any generator option of lib/pbs/accuracy.ts)
//          --json file (write rows + config)  --strict (exit 1 when a target is missed)
//          --explain (per needle: its dense share, where the proxy put it, its block's pooled score and rank
//                     in the query block's row, and whether the run kept it; see docs/pbs-accuracy.md)
//          --dist dir (the built dist/esm to import; default <repo>/dist/esm or SPARSE_KERNELS_DIST)
// Targets (specs/anchors.md): PBS output relative error <= 2% and every planted needle kept.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a value`);
  return v;
};
const flag = (name) => argv.includes(`--${name}`);

const lengthsArg = arg('lengths');
if (!lengthsArg) {
  process.stderr.write('usage: node bench/pbs-accuracy.mjs --lengths 8192,16384 [--device cuda|cpu] [--heads 8/2] ...\n');
  process.exit(1);
}
const lengths = lengthsArg.split(',').map((s) => Number(s.trim()));
if (lengths.some((n) => !Number.isSafeInteger(n) || n < 1)) throw new Error(`--lengths: positive integers expected, got ${lengthsArg}`);
const [headsQ, headsK] = arg('heads', '8/2').split('/').map(Number);
const dist = path.resolve(arg('dist', process.env.SPARSE_KERNELS_DIST ?? path.join(here, '..', 'dist', 'esm')));
if (!fs.existsSync(path.join(dist, 'index.js'))) throw new Error(`no built package at ${dist} (npm run build:ts, or --dist)`);
const lib = await import(pathToFileURL(path.join(dist, 'index.js')).href);
const { runPbsAccuracy, generateStructuredInputs } = await import(pathToFileURL(path.join(dist, 'pbs', 'accuracy.js')).href);
const { formatTable, writeReport } = await import(pathToFileURL(path.join(dist, 'cli', 'bench', 'harness.js')).href);

const device = arg('device');
const context = device ? new lib.Context({ device }) : lib.Context.default;
const threshold = Number(arg('threshold', '0.9'));
const pbs = { threshold, gqaMode: arg('gqa', 'shared'), pool: arg('pool', 'mean'), selector: arg('selector', 'meanpool') };
if (arg('proxy-rows')) pbs.proxyRows = Number(arg('proxy-rows'));
const inputs = {
  backgroundShare: Number(arg('background', '0.05')),
  needlesPerHead: Number(arg('needles', '2')),
  seed: Number(arg('seed', '1')),
  ...JSON.parse(arg('inputs', '{}')),
};
process.stdout.write(`PBS accuracy on ${context.backend}: Hq ${headsQ} / Hk ${headsK}, D ${Number(arg('dim', '128'))}, ${JSON.stringify(pbs)}, seed ${inputs.seed}, lengths ${lengths.join(', ')}\n`);

const rows = await runPbsAccuracy({
  lengths,
  context,
  headsQ,
  headsK,
  headDim: Number(arg('dim', '128')),
  pbs,
  inputs,
  log: (line) => process.stdout.write(`${line}\n`),
});

// PBS against the baseline at the same threshold: the paper reports ~10-15% fewer blocks.
const table = rows.map((r) => {
  const base = rows.find((x) => x.N === r.N && x.method.startsWith('meanpool'));
  return {
    N: r.N,
    method: r.method,
    'rel. error': r.relError,
    density: r.density,
    needles: `${r.needlesKept}/${r.needles}`,
    ms: r.ms,
    'blocks vs baseline': r.method === 'pbs' && base ? `${(((r.density - base.density) / base.density) * 100).toFixed(1)}%` : '',
  };
});
process.stdout.write(`\n${formatTable(table)}\n`);
let missed = 0;
for (const r of rows.filter((x) => x.method === 'pbs')) {
  const ok = r.relError <= 0.02 && r.needlesKept === r.needles;
  if (!ok) missed++;
  process.stdout.write(`N ${r.N}: PBS ${ok ? 'meets' : 'MISSES'} the targets (rel. error ${(r.relError * 100).toFixed(2)}% <= 2%, needles ${r.needlesKept}/${r.needles})\n`);
}
if (flag('explain')) for (const n of lengths) await explain(n);

/**
 * Where each planted needle is lost, recomputed in float64 on the host from the run's own permutation and
 * layout (the same inputs as the table: same generator options and seed):
 *   dense share  the needle keys' share of their query's dense attention (the generator's needleShare);
 *   proxy        the needle key's rank inside its segment after the permutation, and the key block it landed in;
 *   row          how many of the query block's candidate blocks the selector kept;
 *   pooled       the needle block's probability and rank among the candidates in the meanpool estimate
 *                (q and k pooled over the valid rows of each block, softmax over the candidates);
 *   oracle       (N <= 16K) the rank of the needle block in the dense attention mass of the query block
 *                averaged over its rows (what the pooled score estimates), and how many blocks tau needs there.
 */
async function explain(n) {
  const d = Number(arg('dim', '128'));
  const B = pbs.blockSize ?? 128;
  const S = pbs.segmentSize ?? 256;
  const bps = S / B;
  const inp = generateStructuredInputs({ ...inputs, seqLen: n, headsQ, headsK, headDim: d });
  const dtype = context.backend === 'cuda' ? 'bfloat16' : 'float32';
  const t = (a, h) => lib.Tensor.from(a, [1, h, n, d], { dtype, context });
  const [q, k, v] = [t(inp.q, headsQ), t(inp.k, headsK), t(inp.v, headsK)];
  const r = lib.pbsAttention(q, k, v, { ...pbs, returnStats: true });
  const rep = await r.stats.read();
  if (rep.fallback) return;
  const host = await r.stats.layout.toHost();
  const L = host.toLists();
  const perm = await r.stats.permutation.toArray();
  const permHeads = perm.length / n;
  const G = headsQ / headsK;
  const scale = pbs.scale ?? 1 / Math.sqrt(d);
  const T = Math.ceil(n / B);
  const row = (a, h, i) => a.subarray((h * n + i) * d, (h * n + i + 1) * d);
  const dot = (a, b) => a.reduce((s, x, c) => s + x * b[c], 0);
  const softmaxRow = (h, i) => {
    const p = new Float64Array(i + 1);
    const qi = row(inp.q, h, i);
    for (let j = 0; j <= i; j++) p[j] = dot(qi, row(inp.k, Math.floor(h / G), j)) * scale;
    const m = Math.max(...p);
    let z = 0;
    for (let j = 0; j <= i; j++) z += p[j] = Math.exp(p[j] - m);
    return p.map((x) => x / z);
  };
  const poolRows = (rows) => {
    const out = Float64Array.from(rows[0]);
    for (const x of rows.slice(1)) for (let c = 0; c < d; c++) out[c] = pbs.pool === 'max' ? Math.max(out[c], x[c]) : out[c] + x[c];
    return pbs.pool === 'max' ? out : out.map((x) => x / rows.length);
  };
  const rankOf = (vals, j) => vals.filter((x, y) => x > vals[j] || (x === vals[j] && y < j)).length;
  process.stdout.write(`\nN ${n}: needles (density ${rep.density.toFixed(3)}, ${JSON.stringify(pbs)})\n`);
  for (const nd of inp.needles) {
    const hp = permHeads === headsQ ? nd.queryHead : nd.kvHead;
    const prow = perm.subarray(hp * n, (hp + 1) * n);
    const slot = prow.indexOf(nd.keyPos);
    const nb = Math.floor(slot / B);
    const i = Math.floor(nd.queryPos / B);
    const ncand = Math.floor(i / bps) * bps;
    const lr = nd.queryHead * T + i;
    const listed = (cnt, idx, stride) => Array.from(idx.subarray(lr * stride, lr * stride + cnt[lr]));
    const kept = [...listed(L.fullCounts, L.fullIndices, host.maxBlocks), ...listed(L.maskCounts, L.maskIndices, host.maskMaxBlocks)].includes(nb);
    const p = softmaxRow(nd.queryHead, nd.queryPos);
    let share = 0;
    for (let x = 0; x < nd.keyLength; x++) share += p[nd.keyPos + x];
    let line = `  q${nd.queryHead}:${nd.queryPos} <- k${nd.kvHead}:${nd.keyPos}: dense share ${share.toFixed(3)} | proxy: rank ${slot % S}/${S} in its segment, block ${nb}`;
    if (nb >= ncand) {
      line += ` | own segment of query block ${i}`;
    } else {
      line += ` | query block ${i}: ${L.fullCounts[lr]} of ${ncand} candidate blocks kept`;
      if ((pbs.selector ?? 'meanpool') === 'meanpool') {
        const qbar = poolRows(Array.from({ length: Math.min(B, n - i * B) }, (_, x) => row(inp.q, nd.queryHead, i * B + x)));
        const logits = Array.from({ length: ncand }, (_, j) => dot(qbar, poolRows(Array.from({ length: B }, (_, x) => row(inp.k, nd.kvHead, prow[j * B + x])))) * scale);
        const m = Math.max(...logits);
        const e = logits.map((x) => Math.exp(x - m));
        const z = e.reduce((a, b) => a + b, 0);
        line += `; pooled p ${(e[nb] / z).toExponential(2)} (rank ${rankOf(e, nb)}, uniform ${(1 / ncand).toExponential(2)})`;
      }
      if (n <= 16384) {
        const mass = new Float64Array(ncand);
        for (let x = i * B; x < Math.min(n, (i + 1) * B); x++) {
          const pr = softmaxRow(nd.queryHead, x);
          let z = 0;
          for (let s2 = 0; s2 < ncand * B; s2++) z += pr[prow[s2]];
          for (let s2 = 0; s2 < ncand * B; s2++) mass[Math.floor(s2 / B)] += pr[prow[s2]] / z;
        }
        const sorted = Array.from(mass).sort((a, b) => b - a);
        const total = sorted.reduce((a, b) => a + b, 0);
        let need = 0;
        for (let cum = 0; need < ncand && cum < threshold * total; ) cum += sorted[need++];
        line += `; oracle rank ${rankOf(Array.from(mass), nb)}, tau needs ${need}`;
      }
    }
    process.stdout.write(`${line} | ${kept ? 'KEPT' : 'LOST'}\n`);
  }
  r.out.dispose();
  r.stats.dispose();
  for (const x of [q, k, v]) x.dispose();
}

const json = arg('json');
if (json) {
  writeReport(json, 'pbs accuracy', rows, { config: { lengths, headsQ, headsK, pbs, inputs, backend: context.backend } });
  process.stdout.write(`report: ${json}\n`);
}
if (flag('strict') && missed > 0) process.exitCode = 1;
