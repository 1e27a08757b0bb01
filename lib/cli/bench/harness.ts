/**
 * Benchmark harness shared by `npx sparse-kernels bench` and the repo's bench/ scripts: times work
 * enqueued on a stream with stream marks (CUDA events on the GPU, the worker's monotonic clock on the
 * CPU) after warm-up, takes medians, prints a table and writes JSON with the date, machine and commit.
 */
import { execFile, execSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { backendInfo } from '../../backend.js';
import { packageRoot } from '../../native/dialect.js';
import type { Stream } from '../../stream.js';

export interface TimingOptions {
  /** Untimed runs first (module load, caches, allocator warm-up). Defaults to 3. */
  warmup?: number;
  /** Timed runs; the median is reported. Defaults to 10. */
  reps?: number;
  /** Stop adding reps once this many milliseconds were spent timing (at least 3 reps). Defaults to 20000. */
  budgetMs?: number;
}

export interface Timing {
  medianMs: number;
  minMs: number;
  reps: number;
}

/**
 * Times `enqueue` (which must only enqueue work on `stream`) by marks around each repetition.
 * Everything between the marks is device/worker time; JS overhead of enqueueing is excluded because the
 * marks are taken in stream order.
 */
export async function timeOnStream(stream: Stream, enqueue: () => void, options: TimingOptions = {}): Promise<Timing> {
  const warmup = options.warmup ?? 3;
  const reps = options.reps ?? 10;
  const budget = options.budgetMs ?? 20_000;
  for (let i = 0; i < warmup; i++) enqueue();
  await stream.synchronize();
  const times: number[] = [];
  let spent = 0;
  for (let i = 0; i < reps; i++) {
    const a = stream.mark();
    enqueue();
    const b = stream.mark();
    await stream.synchronize();
    const ms = b.elapsedSince(a);
    times.push(ms);
    spent += ms;
    if (spent > budget && times.length >= 3) break;
  }
  times.sort((x, y) => x - y);
  return { medianMs: times[Math.floor(times.length / 2)]!, minMs: times[0]!, reps: times.length };
}

export interface MachineInfo {
  date: string;
  commit: string;
  node: string;
  backend: string;
  device: string;
  cpu: string;
  threads: number;
}

export function machineInfo(): MachineInfo {
  const info = backendInfo();
  let commit = 'unknown';
  try {
    commit = execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'], encoding: 'utf8' }).trim();
    const dirty = execSync('git status --porcelain --untracked-files=no', { stdio: ['ignore', 'pipe', 'ignore'], encoding: 'utf8' }).trim();
    if (dirty) commit += '-dirty';
  } catch {
    const meta = info.buildMetadata?.commit;
    if (typeof meta === 'string') commit = meta.slice(0, 12);
  }
  return {
    date: new Date().toISOString(),
    commit,
    node: process.version,
    backend: info.backend,
    device: info.backend === 'cuda' ? (info.devices[0]?.name ?? 'cuda') : `${os.cpus()[0]?.model ?? 'cpu'}`,
    cpu: `${os.cpus()[0]?.model ?? 'cpu'} x${os.availableParallelism()}`,
    threads: info.cpu.threads,
  };
}

export type Row = Record<string, string | number | boolean | null>;

/** Formats rows as an aligned text table (columns in first-seen key order). */
export function formatTable(rows: Row[]): string {
  if (rows.length === 0) return '(no rows)';
  const cols: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  const cell = (v: Row[string] | undefined) =>
    v === undefined || v === null ? '' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : fmt(v)) : String(v);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padStart(widths[i]!)).join('  ');
  return [line(cols), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join('\n');
}

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a >= 1000) return v.toFixed(0);
  if (a >= 100) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  if (a >= 0.01) return v.toFixed(3);
  return v.toExponential(2);
}

/** Writes {machine, title, rows, ...extra} as JSON. */
export function writeReport(file: string, title: string, rows: Row[], extra: Record<string, unknown> = {}): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify({ title, machine: machineInfo(), ...extra, rows }, null, 2)}\n`);
}

/** mulberry32: deterministic bench inputs, masks and active sets (the same every run, for comparable reports). */
export function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Runs the peer script `bench/peers/<name>.py` (what a user would pick instead, measured in the same run) with
 * `args`, and reads the JSON it writes to `peerFile`: `results`, and its other top-level fields as `meta`. A
 * missing script (an installed package has no bench/), a failed run or no output gives no results and a note
 * saying why instead of an exception, so the benchmark still reports our own figures.
 */
export async function runPeerScript<R>(name: string, args: string[], peerFile: string): Promise<{ results: R[]; meta: Record<string, unknown>; note?: string }> {
  const script = path.join(packageRoot(), 'bench', 'peers', `${name}.py`);
  if (!fs.existsSync(script)) return { results: [], meta: {}, note: `peer script not found (${script}): run from a checkout` };
  const python = process.env.SPARSE_KERNELS_PYTHON ?? 'python3';
  process.stdout.write(`running peers: ${python} ${script} ${args.join(' ')}\n`);
  const note = await new Promise<string | undefined>((resolve) => {
    const child = execFile(python, [script, ...args], { timeout: 20 * 60_000, maxBuffer: 64 << 20 }, (err) =>
      resolve(err ? `peer script failed: ${err.message.split('\n')[0]}` : undefined),
    );
    child.stdout?.pipe(process.stdout);
    child.stderr?.pipe(process.stderr);
  });
  if (!fs.existsSync(peerFile)) return { results: [], meta: {}, note: note ?? 'peer script wrote no results' };
  const { results, ...meta } = JSON.parse(fs.readFileSync(peerFile, 'utf8')) as { results?: R[] } & Record<string, unknown>;
  return { results: results ?? [], meta, note };
}
