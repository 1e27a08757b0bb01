/**
 * The native boundary: the raw native functions (nativeOps, no lib/ validation in front) called with
 * generated malformed arguments in a child process (fixtures/native-boundary.cjs), so that a crash shows as
 * a signal or an exit code instead of killing a jest worker. Every case must end in a synchronous TypeError /
 * RangeError, a rejection or stream error with a stable code, or success; the child must exit normally,
 * with nothing left allocated. Storages holding garbage (random int32 bits as block indices, row pointers,
 * permutations, stream ids) reach the kernels this way: they must be refused (check_bsr_structure, the stream
 * id and permutation checks of the CPU tasks) or clamped, never read out of bounds.
 *
 * SPARSE_KERNELS_ASAN_BINARY=<an AddressSanitizer build of the addon> runs the same child under ASan as well
 * (LD_PRELOAD of the compiler's libasan): any out-of-bounds access aborts it. docs/reliability.md shows how
 * to build one; on the GPU, compute-sanitizer plays that role (docs/reliability.md has the command lines).
 */
import { execFile, execFileSync } from 'node:child_process';
import * as path from 'node:path';

import { loadBinding } from '../../lib/native/load';
import { cudaUsable, describeGpu, REQUIRE_GPU } from '../helpers/gpu';
import { CASE_MINIMUMS } from './helpers/budget';
import { addCases, expectCaseBudget, FC_SEED } from './helpers/fc';

expectCaseBudget('native');

const CHILD = path.join(__dirname, 'fixtures', 'native-boundary.cjs');

interface ChildReport {
  device: string;
  seed: number;
  cases: number;
  perFunction: Record<string, number>;
  outcomes: Record<string, number>;
  bad: Array<{ case: string; phase: string; error: string }>;
  hangs: number;
  memory?: unknown;
  fatal?: string;
}

function runChild(binary: string, device: string, runs: number, env: NodeJS.ProcessEnv = {}, timeout = 240_000): Promise<{ report: ChildReport | undefined; code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CHILD, binary, device, String(FC_SEED | 0), String(runs)],
      { env: { ...process.env, SPARSE_KERNELS_LOG: 'silent', ...env }, timeout, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: string }) | null;
        const line = stdout.trim().split('\n').pop() ?? '';
        let report: ChildReport | undefined;
        try {
          report = JSON.parse(line) as ChildReport;
        } catch {
          report = undefined;
        }
        resolve({ report, code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, signal: e?.signal ?? null, stderr });
      },
    );
  });
}

const CPU_OUTCOMES = ['ok', 'throw:TypeError', 'throw:RangeError', 'throw:ERR_DISPOSED', 'async:ERR_INVALID_ARG'];
// CUDA clamps malformed device indices instead of failing the task (only a caller's PBS permutation is
// checked, on the host): success is the expected outcome there.
const CUDA_OUTCOMES = ['ok', 'throw:TypeError', 'throw:RangeError', 'throw:ERR_DISPOSED'];

function expectClean(r: Awaited<ReturnType<typeof runChild>>, minCases: number, outcomes = CPU_OUTCOMES): ChildReport {
  const where = `(replay: SPARSE_KERNELS_FC_SEED=${FC_SEED})`;
  if (r.signal || r.code !== 0 || !r.report) {
    throw new Error(`the child did not exit normally ${where}: code ${r.code}, signal ${r.signal}\n${r.stderr.slice(-4000)}`);
  }
  const rep = r.report;
  if (rep.fatal) throw new Error(`the child failed ${where}: ${rep.fatal}`);
  if (rep.bad.length > 0) throw new Error(`${rep.bad.length} bad outcomes ${where}:\n${rep.bad.slice(0, 20).map((b) => `  ${b.phase}: ${b.case}: ${b.error}`).join('\n')}`);
  expect(rep.hangs).toBe(0);
  expect(rep.cases).toBeGreaterThanOrEqual(minCases);
  // Every native function was exercised, and the cases reached every kind of outcome (so the generator
  // produces both valid calls and each class of refusal, and this test could fail).
  for (const [fn, n] of Object.entries(rep.perFunction)) if (n < minCases / 100) throw new Error(`${fn} ran only ${n} cases`);
  expect(Object.keys(rep.perFunction).length).toBeGreaterThanOrEqual(24);
  for (const k of outcomes) {
    if (!(rep.outcomes[k]! > 0)) throw new Error(`no case ended in ${k}: ${JSON.stringify(rep.outcomes)}`);
  }
  return rep;
}

describe('native boundary (cpu)', () => {
  test(`raw native calls with malformed arguments: typed errors or success, never a crash, a hang or a leak (${CASE_MINIMUMS.native} cases)`, async () => {
    const binary = loadBinding().path;
    const r = await runChild(binary, 'cpu', CASE_MINIMUMS.native);
    const rep = expectClean(r, CASE_MINIMUMS.native);
    addCases('native', rep.cases);
  });

  const asan = process.env.SPARSE_KERNELS_ASAN_BINARY;
  (asan ? test : test.skip)('the same cases under AddressSanitizer: no out-of-bounds access (SPARSE_KERNELS_ASAN_BINARY)', async () => {
    const lib = execFileSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();
    const r = await runChild(asan!, 'cpu', CASE_MINIMUMS.native, {
      LD_PRELOAD: lib,
      ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1:allocator_may_return_null=1',
    }, 600_000);
    expectClean(r, CASE_MINIMUMS.native);
  }, 700_000);
});

describeGpu('native boundary (cuda)', () => {
  // On the GPU a malformed index that reached a kernel unclamped would be a device fault (ERR_CUDA), which
  // the child counts as bad. compute-sanitizer over this file checks the accesses themselves.
  if (cudaUsable() || REQUIRE_GPU) {
    test('raw native calls with malformed arguments on a CUDA context', async () => {
      const r = await runChild(loadBinding().path, 'cuda', Math.round(CASE_MINIMUMS.native / 4));
      expectClean(r, Math.round(CASE_MINIMUMS.native / 4), CUDA_OUTCOMES);
    });
  }
});

describe('aliasing at the native boundary', () => {
  // Found by the fuzzer (seed 593842129): pbsRun with its pooled-query output aliasing the permutation wrote
  // floats over the permutation while the key pooling used it as row indices (a segfault). Every op binding
  // now refuses one memory under two names when either is written; reading one memory twice stays allowed.
  test('an output that is the same memory as another argument is a TypeError; two reads of one memory are fine', async () => {
    const b = require(loadBinding().path) as {
      NativeContext: new (backend: number, device: number, maxBytes: number) => {
        defaultStream: { synchronize(): Promise<void> };
        allocate(bytes: number, stream: unknown): { upload(s: unknown, d: Float32Array, a: number, b: number, n: number): void; dispose(): void };
        dispose(): void;
      };
      spmmDenseForward(stream: unknown, tensors: Record<string, unknown>, params: Record<string, number>): unknown;
    };
    const ctx = new b.NativeContext(0, 0, 0);
    const s = ctx.defaultStream;
    const n = 4;
    const make = () => {
      const st = ctx.allocate(n * n * 4, s);
      st.upload(s, Float32Array.from({ length: n * n }, (_, i) => (i % 7) - 3), 0, 0, n * n);
      return st;
    };
    const x = make();
    const y = make();
    const params = { dtype: 0, activation: 0, n, m: n, k: n };
    expect(() => b.spmmDenseForward(s, { x, w: x, y: x }, params)).toThrow(/tensors\.y is the same memory as tensors\.x, and one of them is written/);
    expect(() => b.spmmDenseForward(s, { x, w: x, y }, params)).not.toThrow();
    await s.synchronize();
    for (const t of [x, y]) t.dispose();
    ctx.dispose();
  });
});
