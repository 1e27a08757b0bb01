#!/usr/bin/env node
// PBS accuracy harness: dense vs PBS vs the unpermuted MeanPooling baseline on structured inputs (sink,
// local band, heavy hitters, background, planted needles; lib/pbs/accuracy.ts), through the built package.
//
//   node bench/pbs-accuracy.mjs --lengths 8192,16384,32768,65536,131072 --device cuda
//   node bench/pbs-accuracy.mjs --lengths 8192,16384 --device cpu --heads 2/1
//
// Options: --lengths a,b,c (required)  --device cuda|cpu (default: the library's choice)
//          --heads Hq/Hk (default 8/2)  --dim D (128)  --threshold tau (0.9)  --gqa shared|perQueryHead
//          --background share (0.05)  --needles per KV head (2)  --seed s (1)
//          --inputs '{"heavyEvery":16,"needleLength":16}' (any generator option of lib/pbs/accuracy.ts)
//          --json file (write rows + config)  --strict (exit 1 when a target is missed)
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
const { runPbsAccuracy } = await import(pathToFileURL(path.join(dist, 'pbs', 'accuracy.js')).href);
const { formatTable, writeReport } = await import(pathToFileURL(path.join(dist, 'cli', 'bench', 'harness.js')).href);

const device = arg('device');
const context = device ? new lib.Context({ device }) : lib.Context.default;
const threshold = Number(arg('threshold', '0.9'));
const pbs = { threshold, gqaMode: arg('gqa', 'shared') };
const inputs = {
  backgroundShare: Number(arg('background', '0.05')),
  needlesPerHead: Number(arg('needles', '2')),
  seed: Number(arg('seed', '1')),
  ...JSON.parse(arg('inputs', '{}')),
};
process.stdout.write(`PBS accuracy on ${context.backend}: Hq ${headsQ} / Hk ${headsK}, D ${Number(arg('dim', '128'))}, tau ${threshold}, lengths ${lengths.join(', ')}\n`);

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
const json = arg('json');
if (json) {
  writeReport(json, 'pbs accuracy', rows, { config: { lengths, headsQ, headsK, pbs, inputs, backend: context.backend } });
  process.stdout.write(`report: ${json}\n`);
}
if (flag('strict') && missed > 0) process.exitCode = 1;
