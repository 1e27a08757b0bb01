/**
 * The demo's results: one row per measured configuration (what the table prints, the JSON holds and the
 * charts plot), the table formatting and the report folder's JSON.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { type MachineInfo, formatTable, machineInfo } from '../bench/harness.js';

export type DemoOp = 'pbs' | 'spmm' | 'delta';

export const OP_LABEL: Readonly<Record<DemoOp, string>> = Object.freeze({
  pbs: 'PBS attention',
  spmm: 'block-sparse SpMM',
  delta: 'DeltaLinear',
});

/** One measured configuration. Times are medians of stream-mark timings on the same backend. */
export interface DemoRow {
  op: DemoOp;
  /** Stable key, e.g. "pbs.N16384.t0.9". */
  case: string;
  /** Human-readable problem description for the table. */
  shape: string;
  backend: string;
  dtype: string;
  /** Our op: median ms per call (per frame for DeltaLinear: all streams' steps of one frame). */
  oursMs: number;
  oursMinMs: number;
  /** The dense baseline on the same backend, same unit. */
  denseMs: number;
  denseMinMs: number;
  /** Timed repetitions of each. */
  reps: number;
  /** What the times are per: "call" or "frame". */
  per: 'call' | 'frame';
  /** denseMs / oursMs. */
  speedup: number;
  /** Computed fraction: kept / causal blocks (PBS), stored blocks (SpMM), fired inputs (DeltaLinear). */
  density: number;
  /** The accuracy figure as the table prints it. */
  accuracy: string;
  /** ||ours - dense|| / ||dense|| over the whole output (every frame for DeltaLinear). */
  relError: number;
  /** Op-specific figures (sequence length, threshold, needles, stage times, error bound, ...). */
  details: Record<string, number | string | boolean>;
}

/** Significant-digit formatting for the table (no exponents above 1e-3). */
export function fmtNum(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a < 1e-3) return v.toExponential(1);
  if (a >= 10 ** digits) return v.toFixed(0);
  return v.toPrecision(digits);
}

export function fmtPercent(v: number): string {
  const p = v * 100;
  return `${p >= 10 ? p.toFixed(0) : p >= 1 ? p.toFixed(1) : p.toPrecision(2)}%`;
}

const DENSITY_WHAT: Readonly<Record<DemoOp, string>> = Object.freeze({ pbs: 'blocks', spmm: 'blocks', delta: 'inputs fired' });

/** The table: op, shape, backend, our time, the dense baseline's time, speedup, density, accuracy. */
export function formatDemoTable(rows: readonly DemoRow[]): string {
  return formatTable(
    rows.map((r) => {
      const unit = r.per === 'frame' ? ' ms/frame' : ' ms';
      return {
        op: OP_LABEL[r.op],
        shape: r.shape,
        backend: r.backend,
        ours: `${fmtNum(r.oursMs)}${unit}`,
        dense: `${fmtNum(r.denseMs)}${unit}`,
        speedup: `${r.speedup.toFixed(2)}x`,
        density: `${fmtPercent(r.density)} ${DENSITY_WHAT[r.op]}`,
        accuracy: r.accuracy,
      };
    }),
  );
}

export interface ChartFiles {
  /** Paths written, relative to the report folder. */
  files: string[];
  /** Why charts (or PNGs) are missing, with how to get them. */
  note?: string;
}

export interface DemoReport {
  title: string;
  machine: MachineInfo;
  quick: boolean;
  /** Wall-clock seconds of the whole demo (input generation included). */
  elapsedS: number;
  config: unknown;
  rows: DemoRow[];
  charts: ChartFiles;
  notes: string[];
}

export function buildReport(
  rows: DemoRow[],
  o: { backend: string; device: string; quick: boolean; elapsedS: number; config: unknown; charts: ChartFiles; notes: string[] },
): DemoReport {
  // machineInfo() describes the default backend; the demo's context may be another (options.device).
  const machine = { ...machineInfo(), backend: o.backend, device: o.device };
  return { title: 'sparse-kernels demo', machine, quick: o.quick, elapsedS: o.elapsedS, config: o.config, rows, charts: o.charts, notes: o.notes };
}

export function writeJson(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}
