/**
 * The demo's charts, made with a charting library: Vega-Lite specs (speedup vs density, speedup vs
 * sequence length) compiled by vega-lite, rendered to SVG by vega's headless View and rasterised to PNG
 * by resvg. The three packages are optionalDependencies, loaded lazily here only: the library path never
 * loads them, and without them the demo still prints its table and writes its JSON, and says how to get
 * the charts.
 *
 * vega and vega-lite are ES modules only. This file is also compiled to CommonJS (dist/cjs, ts-jest),
 * where a plain `await import()` becomes `require()`, so the import goes through `new Function`, which
 * keeps a real dynamic import in both builds. Specifiers are resolved from the package root first, so
 * the packages are found next to sparse-kernels wherever the demo is started from.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

import { packageRoot } from '../../native/dialect.js';
import { type ChartFiles, type DemoRow, OP_LABEL } from './report.js';

export type ModuleImporter = (specifier: string) => Promise<unknown>;

const nativeImport = new Function('s', 'return import(s)') as (s: string) => Promise<unknown>;

/** Imports an installed package by name, resolved from sparse-kernels' own folder. */
export const importPackage: ModuleImporter = async (specifier) => {
  let target = specifier;
  try {
    target = pathToFileURL(createRequire(path.join(packageRoot(), 'package.json')).resolve(specifier)).href;
  } catch {
    // Not resolvable from the package root: let the loader try (and report) the bare name.
  }
  return nativeImport(target);
};

/** A Vega-Lite spec (plain JSON). */
export type VegaLiteSpec = Record<string, unknown>;

export interface Chart {
  /** File stem in the report folder: `<name>.svg`, `<name>.png`. */
  name: string;
  spec: VegaLiteSpec;
}

interface VegaLite {
  compile(spec: VegaLiteSpec): { spec: unknown };
}
interface Vega {
  parse(spec: unknown): unknown;
  View: new (runtime: unknown, options: { renderer: string }) => { toSVG(): Promise<string>; finalize(): void };
}
interface Resvg {
  Resvg: new (svg: string, options: Record<string, unknown>) => { render(): { asPng(): Uint8Array } };
}

const INSTALL_HINT = 'npm install vega vega-lite @resvg/resvg-js (optional dependencies of sparse-kernels; skipped by --omit=optional)';

const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';
const BASE = {
  $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
  width: 560,
  height: 340,
  background: 'white',
  padding: 12,
  config: { font: FONT, title: { fontSize: 15, subtitleFontSize: 11, subtitleColor: '#555' }, axis: { labelFontSize: 11, titleFontSize: 12 }, legend: { labelFontSize: 11 } },
} as const;

function tokens(n: number): string {
  return n % 1024 === 0 ? `${n / 1024}K` : String(n);
}

function subtitle(rows: readonly DemoRow[], device: string): string[] {
  const backends = [...new Set(rows.map((r) => r.backend))].join(', ');
  return [`${backends}: ${device}`, 'speedup = dense baseline time / our time (same backend, same inputs, this run)'];
}

/** Speedup against density: SpMM at each sparsity, PBS at each threshold (at the length with the most thresholds). */
export function speedupVsDensitySpec(rows: readonly DemoRow[], device: string): VegaLiteSpec | undefined {
  const pbsRows = rows.filter((r) => r.op === 'pbs');
  const perLength = (n: unknown) => pbsRows.filter((r) => r.details.seqLen === n).length;
  const headline = pbsRows.map((r) => r.details.seqLen).reduce<unknown>((best, n) => (best === undefined || perLength(n) > perLength(best) ? n : best), undefined);
  const points = rows
    .filter((r) => r.op === 'spmm' || (r.op === 'pbs' && r.details.seqLen === headline))
    .map((r) => ({
      series: r.op === 'pbs' ? `${OP_LABEL.pbs} (N ${tokens(Number(headline))}, thresholds)` : `${OP_LABEL.spmm} (sparsities)`,
      density: r.density,
      speedup: r.speedup,
      label: r.op === 'pbs' ? `t=${r.details.threshold}` : `${Math.round(Number(r.details.sparsity) * 100)}%`,
    }));
  if (points.length === 0) return undefined;
  // Where the ideal curve starts (bounded: a density of 0 would put it at infinity).
  const lo = Math.max(0.01, Math.min(...points.map((p) => p.density)));
  const ideal = Array.from({ length: 40 }, (_, i) => {
    const d = lo * (1 / lo) ** (i / 39);
    return { density: d, speedup: 1 / d };
  });
  const speedups = points.map((p) => p.speedup);
  // Log axis bounded by the data and the ideal curve (an automatic one pads to whole decades).
  const yDomain = [Math.min(0.5, ...speedups) * 0.8, Math.max(1 / lo, ...speedups) * 1.25];
  const x = { field: 'density', type: 'quantitative', title: 'density (fraction of blocks computed)', scale: { domain: [0, 1.05] } };
  const y = { field: 'speedup', type: 'quantitative', title: 'speedup over dense', scale: { type: 'log', domain: yDomain, nice: false } };
  // One color definition for the lines and their labels: one legend.
  const color = { field: 'series', type: 'nominal', title: null, legend: { orient: 'top-right', labelLimit: 400 } };
  return {
    ...BASE,
    title: { text: 'Speedup against density', subtitle: subtitle(rows, device) },
    layer: [
      { data: { values: ideal }, mark: { type: 'line', strokeDash: [5, 4], color: '#aaa' }, encoding: { x, y } },
      {
        data: { values: [ideal[0]] },
        mark: { type: 'text', align: 'left', dx: 6, color: '#888', fontSize: 10, text: 'ideal: 1 / density' },
        encoding: { x, y },
      },
      { data: { values: [{ speedup: 1 }] }, mark: { type: 'rule', color: '#666', strokeWidth: 1 }, encoding: { y } },
      {
        data: { values: points },
        layer: [
          {
            mark: { type: 'line', point: { size: 60, filled: true }, strokeWidth: 2 },
            encoding: { x, y, color, order: { field: 'density' } },
          },
          { mark: { type: 'text', dy: -11, fontSize: 10 }, encoding: { x, y, text: { field: 'label' }, color } },
        ],
      },
    ],
  };
}

/** Speedup against sequence length: PBS at the default threshold at each length. */
export function speedupVsSeqLenSpec(rows: readonly DemoRow[], device: string): VegaLiteSpec | undefined {
  const pbs = rows.filter((r) => r.op === 'pbs');
  const thresholds = pbs.map((r) => Number(r.details.threshold));
  // The threshold every length ran with (the sweep's extra thresholds run at one length only).
  const common = thresholds.find((t) => new Set(pbs.filter((r) => r.details.threshold === t).map((r) => r.details.seqLen)).size > 1) ?? thresholds[0];
  const points = pbs
    .filter((r) => r.details.threshold === common)
    .map((r) => ({ seqLen: Number(r.details.seqLen), speedup: r.speedup, label: `density ${(r.density * 100).toFixed(0)}%` }));
  if (points.length === 0) return undefined;
  const x = {
    field: 'seqLen',
    type: 'quantitative',
    title: 'sequence length N (tokens)',
    scale: { type: 'log', base: 2, nice: false, padding: 30 },
    axis: { values: points.map((p) => p.seqLen), labelExpr: "datum.value % 1024 === 0 ? datum.value / 1024 + 'K' : format(datum.value, ',d')" },
  };
  // Headroom above the highest point for its label.
  const yMax = Math.max(1.2, ...points.map((p) => p.speedup)) * 1.15;
  const y = { field: 'speedup', type: 'quantitative', title: 'speedup over dense causal attention', scale: { domain: [0, yMax] } };
  const sample = pbs[0]!;
  return {
    ...BASE,
    title: {
      text: `${OP_LABEL.pbs}: speedup against sequence length (threshold ${common})`,
      subtitle: [...subtitle(rows, device), `heads ${sample.details.headsQ}/${sample.details.headsK}, D ${sample.details.headDim}, ${sample.dtype}; labels: kept fraction of the causal blocks`],
    },
    layer: [
      { data: { values: [{ speedup: 1 }] }, mark: { type: 'rule', color: '#666', strokeWidth: 1 }, encoding: { y } },
      {
        data: { values: points },
        layer: [
          { mark: { type: 'line', point: { size: 60, filled: true }, strokeWidth: 2, color: '#4c78a8' }, encoding: { x, y } },
          { mark: { type: 'text', dy: -12, fontSize: 10 }, encoding: { x, y, text: { field: 'label' } } },
        ],
      },
    ],
  };
}

export function demoCharts(rows: readonly DemoRow[], device: string): Chart[] {
  const out: Chart[] = [];
  const a = speedupVsDensitySpec(rows, device);
  if (a) out.push({ name: 'speedup-density', spec: a });
  const b = speedupVsSeqLenSpec(rows, device);
  if (b) out.push({ name: 'speedup-seqlen', spec: b });
  return out;
}

function reason(e: unknown): string {
  return e instanceof Error ? (e.message.split('\n')[0] ?? e.message) : String(e);
}

/**
 * Writes `<name>.vl.json` (the spec, always), `<name>.svg` and `<name>.png` for each chart into `dir`.
 * Never throws for missing or failing chart packages: what could not be made is explained in `note`.
 */
export async function renderCharts(dir: string, charts: readonly Chart[], importer: ModuleImporter = importPackage): Promise<ChartFiles> {
  const files: string[] = [];
  for (const c of charts) {
    fs.writeFileSync(path.join(dir, `${c.name}.vl.json`), `${JSON.stringify(c.spec, null, 2)}\n`);
    files.push(`${c.name}.vl.json`);
  }
  let vl: VegaLite;
  let vega: Vega;
  try {
    [vl, vega] = (await Promise.all([importer('vega-lite'), importer('vega')])) as [VegaLite, Vega];
  } catch (e) {
    return { files, note: `charts not rendered (${reason(e)}): ${INSTALL_HINT}; the Vega-Lite specs are in the report folder` };
  }
  const svgs: Array<[string, string]> = [];
  try {
    for (const c of charts) {
      const view = new vega.View(vega.parse(vl.compile(c.spec).spec), { renderer: 'none' });
      const svg = await view.toSVG();
      view.finalize();
      fs.writeFileSync(path.join(dir, `${c.name}.svg`), svg);
      files.push(`${c.name}.svg`);
      svgs.push([c.name, svg]);
    }
  } catch (e) {
    return { files, note: `chart rendering failed: ${reason(e)}` };
  }
  let resvg: Resvg;
  try {
    const mod = (await importer('@resvg/resvg-js')) as Partial<Resvg> & { default?: Resvg };
    // A CommonJS package: named exports, or only `default` depending on how the loader saw it.
    resvg = mod.Resvg ? (mod as Resvg) : mod.default!;
  } catch (e) {
    return { files, note: `PNG charts skipped (${reason(e)}): npm install @resvg/resvg-js; the SVG charts are written` };
  }
  try {
    for (const [name, svg] of svgs) {
      const png = new resvg.Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, background: 'white', font: { loadSystemFonts: true } })
        .render()
        .asPng();
      fs.writeFileSync(path.join(dir, `${name}.png`), png);
      files.push(`${name}.png`);
    }
  } catch (e) {
    return { files, note: `PNG rendering failed: ${reason(e)}; the SVG charts are written` };
  }
  return { files };
}
