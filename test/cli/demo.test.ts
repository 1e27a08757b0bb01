/**
 * The demo and the CLI wiring.
 *
 * The end-to-end test runs the real CLI (`node <esm build>/cli/main.js demo --quick`) in a child process:
 * the chart packages are ES modules, which jest's CommonJS sandbox cannot import, and the CLI is what a
 * user runs. The ESM build is compiled fresh from lib/ into node_modules/.cache (so packages resolve from
 * the repository), never into the shared dist/. The in-process tests cover what a child cannot show
 * cheaply: the demo without the optional chart packages, and the progress bar on a terminal.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { BENCHES } from '../../lib/cli/benches';
import { runDemo } from '../../lib/cli/demo';
import { deltaUnits, needleRecall, pbsUnits, runDeltaWorkload, runPbsWorkload, runSpmmWorkload, spmmUnits } from '../../lib/cli/demo/workloads';
import { BlockLayout } from '../../lib/attention';
import type { PbsStats } from '../../lib/pbs';
import { Tensor } from '../../lib/tensor';
import { cpuContext, describeGpu } from '../helpers/gpu';
import { type Chart, renderCharts, speedupVsDensitySpec, speedupVsSeqLenSpec } from '../../lib/cli/demo/chart';
import { createProgress } from '../../lib/cli/demo/progress';
import { type DemoReport, type DemoRow, fmtNum, formatDemoTable } from '../../lib/cli/demo/report';
import { demoSizes } from '../../lib/cli/demo/sizes';

const ROOT = path.resolve(__dirname, '..', '..');
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function tmpDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sk-demo-${label}-`));
}

/** Compiles lib/ as ES modules (as scripts/build-ts.mjs does for dist/esm) into a private folder. */
function buildEsm(): string {
  const out = path.join(ROOT, 'node_modules', '.cache', 'sparse-kernels-cli-test', `${process.pid}`);
  fs.rmSync(out, { recursive: true, force: true });
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  // --noCheck: emit only (type errors are the type-check's job, and other files may be mid-edit).
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json', '--outDir', out, '--noCheck', '--declaration', 'false', '--sourceMap', 'false'], {
    cwd: ROOT,
    stdio: 'pipe',
  });
  fs.renameSync(path.join(out, 'native', 'dialect.esm.js'), path.join(out, 'native', 'dialect.js'));
  return out;
}

function cli(build: string, args: string[], device: 'cpu' | 'cuda' = 'cpu'): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(build, 'cli', 'main.js'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, SPARSE_KERNELS_DEVICE: device },
    timeout: 300_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function readReport(dir: string): DemoReport {
  return JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')) as DemoReport;
}

describe('npx sparse-kernels demo --quick (the built CLI, CPU)', () => {
  let build: string;
  let outDir: string;
  let run: ReturnType<typeof cli>;
  let report: DemoReport;

  beforeAll(() => {
    build = buildEsm();
    outDir = tmpDir('cli');
    run = cli(build, ['demo', '--quick', '--out-dir', outDir, '--device', 'cpu']);
    if (run.status === 0) report = readReport(outDir);
  }, 240_000);

  afterAll(() => {
    if (build) fs.rmSync(build, { recursive: true, force: true });
    if (outDir) fs.rmSync(outDir, { recursive: true, force: true });
  });

  test('exits 0 and prints one table with every configuration of the quick sizes', () => {
    if (run.status !== 0) throw new Error(`demo failed (${run.status}):\n${run.stderr}\n${run.stdout}`);
    const sz = demoSizes('cpu', true);
    const expected = sz.pbs.lengths.length + sz.pbs.thresholds.length + sz.spmm.sparsities.length + 1;
    expect(report.rows).toHaveLength(expected);
    expect(report.rows.map((r) => r.op)).toEqual([
      ...Array(sz.pbs.lengths.length + sz.pbs.thresholds.length).fill('pbs'),
      ...Array(sz.spmm.sparsities.length).fill('spmm'),
      'delta',
    ]);
    const lines = run.stdout.split('\n');
    const header = lines.findIndex((l) => /^\s*op\s+shape\s+backend\s+ours\s+dense\s+speedup\s+density\s+accuracy\s*$/.test(l));
    expect(header).toBeGreaterThanOrEqual(0);
    const body = lines.slice(header + 2, header + 2 + expected);
    // The table shows the report's figures: the same run, not a second measurement or a constant.
    report.rows.forEach((r, i) => {
      const line = body[i]!;
      const unit = r.per === 'frame' ? ' ms/frame' : ' ms';
      expect(line).toContain(`${fmtNum(r.oursMs)}${unit}`);
      expect(line).toContain(`${fmtNum(r.denseMs)}${unit}`);
      expect(line).toContain(`${r.speedup.toFixed(2)}x`);
      expect(line).toContain(r.accuracy);
      expect(line).toContain('cpu');
    });
    expect(lines[header + 2 + expected]).toBe('');
  });

  test('the report holds measured, consistent figures', () => {
    expect(report.machine.backend).toBe('cpu');
    expect(report.quick).toBe(true);
    expect(report.elapsedS).toBeGreaterThan(0);
    for (const r of report.rows) {
      expect(r.backend).toBe('cpu');
      for (const t of [r.oursMs, r.oursMinMs, r.denseMs, r.denseMinMs]) {
        expect(Number.isFinite(t)).toBe(true);
        expect(t).toBeGreaterThan(0);
      }
      expect(r.oursMinMs).toBeLessThanOrEqual(r.oursMs);
      expect(r.denseMinMs).toBeLessThanOrEqual(r.denseMs);
      expect(r.reps).toBeGreaterThanOrEqual(3);
      expect(r.speedup).toBeCloseTo(r.denseMs / r.oursMs, 10);
      expect(Number.isFinite(r.relError)).toBe(true);
      expect(r.relError).toBeGreaterThanOrEqual(0);
    }
    const pbs = report.rows.filter((r) => r.op === 'pbs');
    for (const r of pbs) {
      // Own-segment blocks above the diagonal count too, so PBS density can pass 1 slightly at short N.
      expect(r.density).toBeGreaterThan(0);
      expect(r.density).toBeLessThan(1.2);
      expect(r.details.needlesKept).toBeLessThanOrEqual(r.details.needles as number);
      expect(r.details.needles).toBeGreaterThan(0);
      // PBS drops keys: it differs from dense, but stays an attention output (not garbage).
      expect(r.relError).toBeLessThan(1);
      expect(r.details.fallback).toBe(false);
    }
    // A lower threshold keeps fewer blocks (same inputs, same length).
    const headline = demoSizes('cpu', true).pbs.headline;
    const byT = pbs.filter((r) => r.details.seqLen === headline).sort((a, b) => Number(a.details.threshold) - Number(b.details.threshold));
    for (let i = 1; i < byT.length; i++) expect(byT[i]!.density).toBeGreaterThanOrEqual(byT[i - 1]!.density);
    for (const r of report.rows.filter((x) => x.op === 'spmm')) {
      // Same pruned weights through the sparse kernel and the dense linear, fp32.
      expect(r.relError).toBeLessThanOrEqual(1e-5);
      expect(r.density).toBeCloseTo(1 - Number(r.details.sparsity), 2);
    }
    const delta = report.rows.find((r) => r.op === 'delta')!;
    expect(delta.per).toBe('frame');
    expect(delta.density).toBeGreaterThan(0);
    expect(delta.density).toBeLessThan(1);
    // The layer's guarantee: |y - (W x + b)|_i <= sum_k |W[i, k]| theta at every step (float32 slack).
    expect(delta.details.boundRatio).toBeLessThanOrEqual(1.001);
    expect(delta.details.boundRatio).toBeGreaterThan(0);
  });

  test('writes the charts (SVG, PNG and the Vega-Lite specs) with this run\'s data', () => {
    expect(report.charts.note).toBeUndefined();
    for (const name of ['speedup-density', 'speedup-seqlen']) {
      const png = fs.readFileSync(path.join(outDir, `${name}.png`));
      expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
      expect(png.length).toBeGreaterThan(10_000);
      expect(png.readUInt32BE(16)).toBeGreaterThan(600); // IHDR width
      const svg = fs.readFileSync(path.join(outDir, `${name}.svg`), 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      expect(report.charts.files).toEqual(expect.arrayContaining([`${name}.png`, `${name}.svg`, `${name}.vl.json`]));
    }
    expect(fs.readFileSync(path.join(outDir, 'speedup-density.svg'), 'utf8')).toContain('Speedup against density');
    const spec = JSON.parse(fs.readFileSync(path.join(outDir, 'speedup-density.vl.json'), 'utf8')) as { layer: Array<{ data?: { values?: Array<{ speedup: number }> } }> };
    const plotted = spec.layer.flatMap((l) => l.data?.values ?? []).map((p) => p.speedup);
    for (const r of report.rows.filter((x) => x.op === 'spmm')) expect(plotted).toContain(r.speedup);
  });

  test('no progress bar when stderr is not a terminal', () => {
    expect(run.stderr).not.toMatch(/[\u2588\u2591]/);
    expect(run.stdout).not.toMatch(/[\u2588\u2591]/);
  });

  test('usage errors exit 2 with a message, before any work', () => {
    const bad = cli(build, ['bench', '--op', 'nope']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('bench needs --op attention|pbs|spmm|delta (not nope)');
    const dev = cli(build, ['demo', '--device', 'gpu']);
    expect(dev.status).toBe(2);
    expect(dev.stderr).toContain('--device must be one of auto, cuda, cpu');
    const typo = cli(build, ['demo', '--qiuck']);
    expect(typo.status).toBe(2);
    expect(typo.stderr).toContain('unknown argument for demo: --qiuck');
    const unknown = cli(build, ['demo2']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('unknown command: demo2');
    const missing = cli(build, ['demo', '--out-dir']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('--out-dir needs a value');
  });
});

describeGpu('npx sparse-kernels demo --quick --device cuda (the built CLI)', () => {
  test('runs every workload on the GPU with consistent figures', () => {
    const build = buildEsm();
    const outDir = tmpDir('gpu');
    try {
      const run = cli(build, ['demo', '--quick', '--out-dir', outDir, '--device', 'cuda'], 'cuda');
      if (run.status !== 0) throw new Error(`demo failed (${run.status}):\n${run.stderr}\n${run.stdout}`);
      const report = readReport(outDir);
      expect(report.machine.backend).toBe('cuda');
      const sz = demoSizes('cuda', true);
      expect(report.rows).toHaveLength(sz.pbs.lengths.length + sz.pbs.thresholds.length + sz.spmm.sparsities.length + 1);
      for (const r of report.rows) {
        expect(r.backend).toBe('cuda');
        expect(r.oursMs).toBeGreaterThan(0);
        expect(r.denseMs).toBeGreaterThan(0);
        expect(r.speedup).toBeCloseTo(r.denseMs / r.oursMs, 10);
        expect(Number.isFinite(r.relError)).toBe(true);
        expect(run.stdout).toContain(r.accuracy);
      }
      for (const r of report.rows.filter((x) => x.op === 'pbs')) {
        expect(r.dtype).toBe('bfloat16');
        expect(r.relError).toBeLessThan(1);
        expect(r.details.needlesKept).toBeLessThanOrEqual(r.details.needles as number);
      }
      // bf16 outputs of two summation orders.
      for (const r of report.rows.filter((x) => x.op === 'spmm')) expect(r.relError).toBeLessThanOrEqual(1e-2);
      const delta = report.rows.find((r) => r.op === 'delta')!;
      expect(delta.dtype).toBe('float16');
      // The error bound, with fp16 output rounding as slack.
      expect(delta.details.boundRatio).toBeLessThanOrEqual(1.01);
      expect(report.charts.files).toEqual(expect.arrayContaining(['speedup-density.png', 'speedup-seqlen.png']));
    } finally {
      fs.rmSync(build, { recursive: true, force: true });
      fs.rmSync(outDir, { recursive: true, force: true });
    }
  }, 300_000);
});

describe('demo without the optional chart packages (in process)', () => {
  test('prints the table, writes the JSON and the specs, and says how to get the charts', async () => {
    const outDir = tmpDir('nocharts');
    let text = '';
    const stdout = { write: (s: string) => ((text += s), true) } as unknown as NodeJS.WritableStream;
    const missing = async (s: string) => {
      throw Object.assign(new Error(`Cannot find package '${s}'`), { code: 'ERR_MODULE_NOT_FOUND' });
    };
    // A previous run's chart must not survive next to this run's report; other files are left alone.
    fs.writeFileSync(path.join(outDir, 'speedup-density.png'), 'stale');
    fs.writeFileSync(path.join(outDir, 'notes.txt'), 'mine');
    try {
      const code = await runDemo({ quick: true, outDir, device: 'cpu', stdout, importer: missing, progress: false });
      expect(code).toBe(0);
      const report = JSON.parse(fs.readFileSync(path.join(outDir, 'report.json'), 'utf8')) as DemoReport;
      expect(text).toContain(formatDemoTable(report.rows));
      expect(report.charts.note).toContain('npm install vega vega-lite @resvg/resvg-js');
      expect(text).toContain('note: charts not rendered');
      expect(fs.readdirSync(outDir).sort()).toEqual(['notes.txt', 'report.json', 'speedup-density.vl.json', 'speedup-seqlen.vl.json']);
    } finally {
      fs.rmSync(outDir, { recursive: true, force: true });
    }
  }, 120_000);

  test('renderCharts: SVG without resvg says so', async () => {
    const dir = tmpDir('nopng');
    const charts: Chart[] = [{ name: 'c', spec: { mark: 'point' } }];
    const vega = {
      parse: (s: unknown) => s,
      View: class {
        async toSVG() {
          return '<svg xmlns="http://www.w3.org/2000/svg"/>';
        }
        finalize() {}
      },
    };
    const importer = async (s: string) => {
      if (s === 'vega-lite') return { compile: (spec: unknown) => ({ spec }) };
      if (s === 'vega') return vega;
      throw new Error(`Cannot find package '${s}'`);
    };
    try {
      const r = await renderCharts(dir, charts, importer);
      expect(r.files).toEqual(['c.vl.json', 'c.svg']);
      expect(r.note).toContain('PNG charts skipped');
      expect(r.note).toContain('npm install @resvg/resvg-js');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('demo workloads (in process, CPU, quick sizes)', () => {
  test('each workload reports exactly the progress units it announced', async () => {
    const sz = demoSizes('cpu', true);
    const ctx = cpuContext();
    const count = { n: 0 };
    const settings = { ctx, warmup: sz.warmup, tick: () => void count.n++ };
    const pbs = await runPbsWorkload(sz.pbs, settings);
    expect(count.n).toBe(pbsUnits(sz.pbs));
    expect(pbs).toHaveLength(sz.pbs.lengths.length + sz.pbs.thresholds.length);
    count.n = 0;
    await runSpmmWorkload(sz.spmm, settings);
    expect(count.n).toBe(spmmUnits(sz.spmm));
    count.n = 0;
    const delta = await runDeltaWorkload(sz.delta, settings);
    expect(count.n).toBe(deltaUnits(sz.delta));
    expect(delta.reps).toBe(Math.floor(sz.delta.frames / sz.delta.chunk) - 1);
  }, 120_000);
});

describe('needle recall', () => {
  // N 512, blocks of 128 (T = 4); one needle: key 10 read by query 500 (query block 3). The run's
  // permutation moved key 10 to slot 300 (block 2), so only block 2 in row 3 retrieves it.
  const n = 512;
  const needle = { kvHead: 0, queryHead: 1, keyPos: 10, keyLength: 1, queryPos: 500, queryCount: 1 };
  const perm = Int32Array.from({ length: n }, (_, i) => i); // one permutation head (one KV head, shared)
  [perm[10], perm[300]] = [300, 10]; // head 0 (the needle's KV head under 'shared'): slot 300 holds key 10
  const layoutKeeping = (blk: number) =>
    BlockLayout.fromLists(
      // heads 2; row (head 1, query block 3) keeps `blk` as a full block and its own block masked.
      { fullCounts: [0, 0, 0, 0, 0, 0, 0, 1], fullIndices: [0, 0, 0, 0, 0, 0, 0, blk], maskCounts: [1, 1, 1, 1, 1, 1, 1, 1], maskIndices: [0, 1, 2, 3, 0, 1, 2, 3] },
      { queryLength: n, heads: 2, blockSize: 128, causal: true },
    );
  const recall = async (blk: number, withPerm: boolean) => {
    const layout = layoutKeeping(blk);
    const permutation = withPerm ? Tensor.from(perm, [1, 1, n], { dtype: 'int32', context: cpuContext() }) : undefined;
    try {
      return await needleRecall({ layout, permutation } as unknown as PbsStats, [needle], 2);
    } finally {
      layout.dispose();
      permutation?.dispose();
    }
  };

  test('follows the key through the permutation to its block in the query\'s row', async () => {
    expect(await recall(2, true)).toBe(1);
    // Block 0 holds the key's original position, not its slot: not retrieved.
    expect(await recall(0, true)).toBe(0);
    // Without a permutation the original position counts.
    expect(await recall(0, false)).toBe(1);
    expect(await recall(2, false)).toBe(0);
  });
});

describe('bench wiring', () => {
  test.each(Object.entries(BENCHES))('bench --op %s: the module exports its run function', async (_op, entry) => {
    // main.ts's specifier, relative to lib/cli/, as the TypeScript source.
    const mod = (await import(path.join(ROOT, 'lib', 'cli', entry.module.replace(/\.js$/, '')))) as Record<string, unknown>;
    expect(typeof mod[entry.fn]).toBe('function');
  });
});

describe('demo pieces', () => {
  const row = (over: Partial<DemoRow>): DemoRow => ({
    op: 'spmm',
    case: 'x',
    shape: 's',
    backend: 'cpu',
    dtype: 'float32',
    oursMs: 1,
    oursMinMs: 1,
    denseMs: 2,
    denseMinMs: 2,
    reps: 3,
    per: 'call',
    speedup: 2,
    density: 0.5,
    accuracy: 'a',
    relError: 0,
    details: {},
    ...over,
  });

  test('chart specs plot exactly the rows given', () => {
    const rows = [
      row({ op: 'spmm', density: 0.1, speedup: 6.5, details: { sparsity: 0.9 } }),
      row({ op: 'spmm', density: 0.25, speedup: 1.7, details: { sparsity: 0.75 } }),
      row({ op: 'pbs', density: 0.4, speedup: 1.9, details: { seqLen: 4096, threshold: 0.9, headsQ: 4, headsK: 2, headDim: 128 } }),
      row({ op: 'pbs', density: 0.3, speedup: 2.3, details: { seqLen: 8192, threshold: 0.9, headsQ: 4, headsK: 2, headDim: 128 } }),
      row({ op: 'pbs', density: 0.2, speedup: 2.9, details: { seqLen: 8192, threshold: 0.8, headsQ: 4, headsK: 2, headDim: 128 } }),
    ];
    type Layer = { data?: { values?: Array<Record<string, number | string>> }; layer?: Layer[] };
    const values = (spec: unknown) => ((spec as { layer: Layer[] }).layer.map((l) => l.data?.values ?? []).flat());
    const density = values(speedupVsDensitySpec(rows, 'dev')).filter((p) => 'series' in p);
    // SpMM rows and the PBS rows of the longest length (its threshold sweep).
    expect(density.map((p) => Number(p.speedup)).sort((a, b) => a - b)).toEqual([1.7, 2.3, 2.9, 6.5]);
    const seq = values(speedupVsSeqLenSpec(rows, 'dev')).filter((p) => 'seqLen' in p);
    // One point per length at the threshold every length ran with.
    expect(seq.map((p) => [p.seqLen, p.speedup])).toEqual([
      [4096, 1.9],
      [8192, 2.3],
    ]);
    expect(speedupVsSeqLenSpec([rows[0]!], 'dev')).toBeUndefined();
  });

  test('progress bar on a terminal stream, silent otherwise', async () => {
    let written = '';
    const tty = { isTTY: true, columns: 120, write: (s: string) => ((written += s), true) } as unknown as NodeJS.WriteStream;
    const p = await createProgress(true, tty);
    p.start('phase one', 4);
    p.tick('a');
    p.tick('b');
    p.stop();
    expect(written).toMatch(/[\u2588\u2591]/);
    expect(written).toContain('phase one: done');
    written = '';
    const pipe = { ...tty, isTTY: false } as unknown as NodeJS.WriteStream;
    const q = await createProgress(true, pipe);
    q.start('phase', 2);
    q.tick('a');
    q.stop();
    const off = await createProgress(false, tty);
    off.start('phase', 2);
    off.stop();
    expect(written).toBe('');
  });
});
