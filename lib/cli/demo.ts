/**
 * `npx sparse-kernels demo` (`npm run demo` in a clone): realistic synthetic workloads for the three
 * capabilities on the GPU when there is one, else on the CPU backend:
 *
 *   PBS attention on structured long-context inputs, block-sparse SpMM on a pruned layer, DeltaLinear on a
 *   video-like feature stream,
 *
 * each timed against the dense baseline on the same backend (stream marks, medians) with its accuracy
 * figure computed against the dense result of the same run. Prints one table (stdout), shows progress
 * bars on the long parts (stderr, terminals only), and writes a report folder: report.json, and the
 * charts speedup-density / speedup-seqlen as SVG + PNG (with their Vega-Lite specs). Every figure comes
 * from this run; nothing is read from earlier results.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import { type DeviceOption, backendInfo } from '../backend.js';
import { Context } from '../context.js';
import { type ModuleImporter, demoCharts, importPackage, renderCharts } from './demo/chart.js';
import { createProgress } from './demo/progress.js';
import { type ChartFiles, type DemoReport, type DemoRow, OP_LABEL, buildReport, formatDemoTable, writeJson } from './demo/report.js';
import { demoSizes } from './demo/sizes.js';
import { type RunSettings, deltaUnits, pbsUnits, runDeltaWorkload, runPbsWorkload, runSpmmWorkload, spmmUnits } from './demo/workloads.js';

export type { DemoReport, DemoRow } from './demo/report.js';

export interface DemoOptions {
  /** Report folder (created if missing; report.json and the charts are overwritten). Defaults to "./sparse-kernels-report". */
  outDir?: string;
  /** Small sizes (a few seconds): a smoke run, as the CLI test uses. Defaults to false. */
  quick?: boolean;
  /** "auto" (CUDA when usable, else the CPU), "cuda" or "cpu". Defaults to "auto" (or SPARSE_KERNELS_DEVICE). */
  device?: DeviceOption;
  /** Progress bars on stderr; shown only when stderr is a terminal. Defaults to true. */
  progress?: boolean;
  /** Render the charts (needs the optional packages vega, vega-lite, @resvg/resvg-js). Defaults to true. */
  charts?: boolean;
  /** Where the table and the summary go. Defaults to process.stdout. */
  stdout?: NodeJS.WritableStream;
  /** @internal how the chart packages are imported (tests: a failing importer). */
  importer?: ModuleImporter;
}

export const DEMO_DEFAULTS = Object.freeze({
  outDir: 'sparse-kernels-report',
  quick: false,
  device: undefined as DeviceOption | undefined,
  progress: true,
  charts: true,
});

/** The device the context runs on, in words. */
function deviceName(ctx: Context): string {
  if (ctx.backend === 'cuda') return backendInfo().devices[ctx.deviceIndex]?.name ?? `CUDA device ${ctx.deviceIndex}`;
  return `${os.cpus()[0]?.model?.trim() ?? 'CPU'}, ${backendInfo().cpu.threads} threads`;
}

/** What a previous run may have left in the report folder (removed first, so no stale chart survives). */
const OUTPUTS = /^(report\.json|speedup-(density|seqlen)\.(png|svg|vl\.json))$/;

/** Runs the demo; resolves to the process exit code (0). Errors of the library propagate. */
export async function runDemo(options: DemoOptions = {}): Promise<number> {
  const ctx = options.device === undefined ? Context.default : new Context({ device: options.device });
  try {
    return await demo(ctx, options);
  } finally {
    if (options.device !== undefined) ctx.dispose();
  }
}

async function demo(ctx: Context, options: DemoOptions): Promise<number> {
  const started = performance.now();
  const quick = options.quick ?? DEMO_DEFAULTS.quick;
  const outDir = path.resolve(options.outDir ?? DEMO_DEFAULTS.outDir);
  const out = options.stdout ?? process.stdout;
  const sizes = demoSizes(ctx.backend, quick);
  const device = deviceName(ctx);
  out.write(`sparse-kernels demo on ${ctx.backend}: ${device}${quick ? ' (quick sizes)' : ''}\n`);

  const progress = await createProgress(options.progress ?? DEMO_DEFAULTS.progress);
  const settings: RunSettings = { ctx, warmup: sizes.warmup, tick: (label) => progress.tick(label) };
  const rows: DemoRow[] = [];
  try {
    progress.start(OP_LABEL.pbs, pbsUnits(sizes.pbs));
    rows.push(...(await runPbsWorkload(sizes.pbs, settings)));
    progress.stop();
    if (ctx.backend === 'cuda') await ctx.releaseCachedMemory();
    progress.start(OP_LABEL.spmm, spmmUnits(sizes.spmm));
    rows.push(...(await runSpmmWorkload(sizes.spmm, settings)));
    progress.stop();
    if (ctx.backend === 'cuda') await ctx.releaseCachedMemory();
    progress.start(OP_LABEL.delta, deltaUnits(sizes.delta));
    rows.push(await runDeltaWorkload(sizes.delta, settings));
    progress.stop();
  } finally {
    progress.stop(false); // after an error: clear the bar, restore the cursor
  }

  out.write(`\n${formatDemoTable(rows)}\n\n`);
  out.write(
    'speedup = dense time / our time (same backend, same inputs; medians of stream-mark timings). density = computed fraction:\n' +
      'PBS kept causal blocks, SpMM stored blocks, DeltaLinear inputs fired per step. accuracy: against the dense result of this run.\n',
  );

  const notes: string[] = [];
  if (ctx.fallbackReason) notes.push(`CPU backend: ${ctx.fallbackReason}`);
  fs.mkdirSync(outDir, { recursive: true });
  for (const f of fs.readdirSync(outDir)) if (OUTPUTS.test(f)) fs.rmSync(path.join(outDir, f), { force: true });
  let charts: ChartFiles = { files: [], note: 'charts disabled (charts: false)' };
  if (options.charts ?? DEMO_DEFAULTS.charts) charts = await renderCharts(outDir, demoCharts(rows, device), options.importer ?? importPackage);
  if (charts.note) notes.push(charts.note);
  const report: DemoReport = buildReport(rows, {
    backend: ctx.backend,
    device,
    quick,
    elapsedS: (performance.now() - started) / 1000,
    config: { backend: ctx.backend, device, ...sizes },
    charts,
    notes,
  });
  writeJson(path.join(outDir, 'report.json'), report);
  const rel = path.relative(process.cwd(), outDir);
  const shown = rel === '' ? '.' : rel.startsWith('..') ? outDir : rel;
  const images = charts.files.filter((f) => !f.endsWith('.json'));
  out.write(`\nreport: ${path.join(shown, 'report.json')}${images.length ? `, charts: ${images.join(', ')}` : ''}\n`);
  for (const n of notes) out.write(`note: ${n}\n`);
  out.write(`done in ${report.elapsedS.toFixed(1)} s\n`);
  return 0;
}
