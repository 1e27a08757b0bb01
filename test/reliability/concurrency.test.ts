/**
 * Concurrency (issue #8): many streams, worker_threads and disposal racing the work, on every context of
 * testContexts() (the CPU; CUDA too when a GPU is usable or SPARSE_KERNELS_REQUIRE_GPU=1).
 *
 *  - 8 streams x 1,000 mixed ops enqueued round-robin without awaiting, every result checked against a
 *    float64 reference (fixtures/concurrency-ops.cjs: casts, clones of reshaped views, spmm, block-sparse
 *    attention, DeltaLinear steps, and cross-stream read-after-write / write-after-read / write-after-write);
 *  - inputs (tensors, the matrix, the layouts, the delta layer and states) disposed while the ops reading
 *    them are queued;
 *  - 4 worker_threads, each with its own Context, running checked mixed ops while the main thread does;
 *  - a stream, a context, or a worker disposed / terminated with work pending: everything settles, nothing
 *    hangs (every wait has a timeout).
 * process.test.ts covers a process exiting with work pending; stream.test.ts a single queued dispose.
 *
 * Seeded: SPARSE_KERNELS_FC_SEED (else the run's base seed, see helpers/fc.ts) replays a run; every failure
 * message carries the seed.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

import * as sk from '../../lib/index';
import { loadBinding } from '../../lib/native/load';
import { testContexts } from '../helpers/gpu';
import { FC_SEED, expectMemoryAt, memoryMark, seedFor } from './helpers/fc';

type Lib = typeof sk;
type Arrays = ArrayLike<number>[];

interface Job {
  id: number;
  kind: string;
  si: number;
  detail: string;
  outs: Array<[sk.Tensor, 'f32' | 'raw']>;
}

interface Mixer {
  readonly jobs: Job[];
  readonly perStream: number[];
  readonly perKind: Record<string, number>;
  readonly deltaStates: Array<{ state: sk.DeltaState } | null>;
  enqueue(si: number): Job;
  fetch(job: Job, readStream?: sk.Stream): Array<Promise<ArrayLike<number>>>;
  verify(job: Job, arrays: Arrays): string | null;
  check(readStream?: sk.Stream): Promise<{ checked: number; failures: string[] }>;
  dispose(): void;
}

interface Shared {
  mats: Record<string, { W: sk.BlockSparseMatrix }>;
  layouts: Array<{ layout: sk.BlockLayout }>;
  delta: { layer: sk.DeltaLinear };
  dispose(): void;
}

interface MixerOptions {
  seed: number;
  label?: string;
  kinds?: string[];
  disposeInputs?: boolean;
}

interface OpsModule {
  KINDS: string[];
  Mixer: new (lib: Lib, streams: sk.Stream[], shared: Shared, options: MixerOptions) => Mixer;
  createShared(lib: Lib, ctx: sk.Context, seed: number): Shared;
  enqueueRoundRobin(m: Mixer, perStream: number): number;
}

const FIXTURE = path.join(__dirname, 'fixtures', 'concurrency-ops.cjs');
const ops = require(FIXTURE) as OpsModule;

const STREAMS = 8;
const OPS_PER_STREAM = 1000;
const WORKERS = 4;

beforeAll(() => {
  process.stdout.write(`concurrency.test: seed ${FC_SEED} (replay with SPARSE_KERNELS_FC_SEED=${FC_SEED})\n`);
});

/** Rejects when `p` has not settled within `ms`: a hang fails the test instead of stalling it. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms (seed ${FC_SEED})`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Runs `enqueue` while a spin task keeps each of `streams` busy for `spinMs`, and says whether work was still
 * queued when it returned (`queued(streams)`), the precondition of the in-flight cases below. On a loaded
 * machine (CI runs two test files on two cores) the enqueue itself can outlast the spin: that is reported
 * (held: false) instead of failing, and callers spin longer next time; an enqueue that returned well within
 * the spin with nothing queued is a real failure (the ops did not queue behind the spin).
 */
function whileHeld<T>(streams: Array<{ pending: number; _native?: { spinForTesting(ms: number): void } | null }>, spinMs: number, enqueue: () => T, queued = (ss: typeof streams) => ss.some((x) => x.pending > 0)): { result: T; held: boolean; ms: number } {
  for (const x of streams) x._native!.spinForTesting(spinMs);
  const t0 = performance.now();
  const result = enqueue();
  const ms = performance.now() - t0;
  const held = queued(streams);
  if (!held && ms < spinMs * 0.8) throw new Error(`nothing queued ${ms.toFixed(0)} ms into a ${spinMs} ms spin: the ops did not queue behind it`);
  return { result, held, ms };
}

/** The longest spin the adaptive cases grow to: beyond it a machine is too loaded for the case to mean much. */
const SPIN_CAP_MS = 4000;

/**
 * Runs one attempt of an in-flight case, spinning longer after each attempt the machine was too slow to
 * hold (`attempt` returns false after cleaning up); fails after 4 attempts.
 */
async function withHeldRetries(what: string, firstSpinMs: number, attempt: (spinMs: number) => Promise<{ held: boolean; ms: number }>): Promise<void> {
  let spin = firstSpinMs;
  for (let i = 0; i < 4; i++) {
    const r = await attempt(spin);
    if (r.held) return;
    console.log(`[concurrency] ${what}: the enqueue (${r.ms.toFixed(0)} ms) outlasted a ${spin} ms spin (a loaded machine); again with a longer spin`);
    spin = Math.min(SPIN_CAP_MS, Math.max(3 * spin, Math.ceil(3 * r.ms)));
  }
  throw new Error(`${what}: the work was never still queued after its enqueue, in 4 attempts up to a ${spin} ms spin`);
}

function expectNoFailures(failures: string[], what: string): void {
  if (failures.length > 0) {
    throw new Error(`${what}: ${failures.length} results wrong (replay with SPARSE_KERNELS_FC_SEED=${FC_SEED}):\n${failures.slice(0, 15).join('\n')}`);
  }
}

function codeOf(e: unknown): string | undefined {
  return (e as { code?: string } | null)?.code;
}

// ---- worker_threads plumbing

/** Environment of the workers: the binary this process loaded (SPARSE_KERNELS_BINARY or lib/native/load's pick). */
function workerEnv(): NodeJS.ProcessEnv {
  return { ...process.env, SPARSE_KERNELS_BINARY: loadBinding().path, SPARSE_KERNELS_LOG: 'silent' };
}

interface WorkerReport {
  index: number;
  enqueued: number;
  checked: number;
  failures: string[];
  failureCount: number;
  perKind: Record<string, number>;
  memory: [[number, number], [number, number]];
  ms: number;
  fatal?: string;
  compiled?: Record<string, string>;
  queued?: number[];
  ready?: boolean;
  opsStart: number;
  opsEnd: number;
}

interface FixtureWorker {
  worker: Worker;
  /** The worker's next message (rejects when it fails, exits first or stays silent for `ms`; then terminates it). */
  next(ms: number, what: string): Promise<WorkerReport>;
  exit: Promise<number>;
}

function startWorker(workerData: Record<string, unknown>): FixtureWorker {
  const worker = new Worker(FIXTURE, { workerData, env: workerEnv() });
  const exit = new Promise<number>((resolve) => worker.once('exit', resolve));
  const inbox: WorkerReport[] = [];
  let dead: Error | undefined;
  let wake: (() => void) | undefined;
  worker.on('message', (m: WorkerReport) => {
    inbox.push(m);
    wake?.();
  });
  worker.on('error', (e) => {
    dead = e;
    wake?.();
  });
  void exit.then((code) => {
    dead ??= new Error(`worker exited with code ${code} before reporting`);
    wake?.();
  });
  const receive = async (): Promise<WorkerReport> => {
    for (;;) {
      const m = inbox.shift();
      if (m) {
        if (m.fatal) throw new Error(`worker failed: ${m.fatal}`);
        return m;
      }
      if (dead) throw dead;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
  };
  const label = `${String(workerData.concurrencyFixture)} worker ${String(workerData.index ?? '')}`;
  const next = (ms: number, what: string) =>
    within(receive(), ms, `${label}: ${what}`).catch(async (e: unknown) => {
      await worker.terminate();
      throw e;
    });
  return { worker, next, exit };
}

let compiledLib: Promise<Record<string, string>> | undefined;
/** lib/ transpiled once (in a worker) for every later worker of this file. */
function compiled(): Promise<Record<string, string>> {
  compiledLib ??= (async () => {
    const w = startWorker({ concurrencyFixture: 'compile' });
    const m = await w.next(60_000, 'transpiling lib/');
    await w.exit;
    return m.compiled!;
  })();
  return compiledLib;
}

describe.each(testContexts())('concurrency on %s', (name, getContext) => {
  test(`${STREAMS} streams x ${OPS_PER_STREAM} mixed ops enqueued round-robin without awaiting, every result checked`, async () => {
    const ctx = getContext();
    const seed = seedFor(`concurrency mixed ${name}`);
    const base = await memoryMark(ctx);
    const streams = Array.from({ length: STREAMS }, () => ctx.createStream());
    const shared = ops.createShared(sk, ctx, seed);
    const mixer = new ops.Mixer(sk, streams, shared, { seed, label: name });

    const total = ops.enqueueRoundRobin(mixer, OPS_PER_STREAM);
    // Nothing awaited so far: the streams hold a deep backlog while JS moves on to the checks.
    expect(total).toBe(STREAMS * OPS_PER_STREAM);
    expect(mixer.jobs.length).toBe(8000);
    expect(mixer.perStream).toEqual(new Array(STREAMS).fill(OPS_PER_STREAM));
    expect(mixer.jobs.every((j, i) => j.si === i % STREAMS)).toBe(true); // interleaved round-robin
    for (const kind of ops.KINDS) expect(mixer.perKind[kind] ?? 0).toBeGreaterThanOrEqual(300); // a real mix

    const { checked, failures } = await within(mixer.check(), 55_000, 'checking 8000 ops');
    expectNoFailures(failures, `${name}: 8 x 1000 mixed ops`);
    expect(checked).toBe(8000);

    mixer.dispose();
    shared.dispose();
    for (const s of streams) s.dispose();
    await expectMemoryAt(ctx, base, `${name}: 8 x 1000 mixed ops (seed ${FC_SEED})`);
  }, 90_000);

  test('inputs disposed right after the ops that read them are enqueued, outputs while their downloads are queued', async () => {
    const ctx = getContext();
    const seed = seedFor(`concurrency dispose inputs ${name}`);
    const base = await memoryMark(ctx);
    const streams = Array.from({ length: 3 }, () => ctx.createStream());
    const shared = ops.createShared(sk, ctx, seed);
    const mixer = new ops.Mixer(sk, streams, shared, {
      seed,
      label: `${name} dispose-inputs`,
      disposeInputs: true,
      kinds: ['cast', 'clone', 'spmm', 'attention', 'delta', 'xstream', 'overwrite'],
    });
    // The inputs are disposed by the mixer right after each op is enqueued, behind a spin: gone while the ops
    // that read them are still queued (in every round the enqueue fits in the spin; the spin adapts to load).
    let spin = 150;
    let heldRounds = 0;
    for (let round = 0; round < 4; round++) {
      const r = whileHeld(streams, spin, () => ops.enqueueRoundRobin(mixer, 30));
      if (r.held) heldRounds++;
      spin = Math.min(SPIN_CAP_MS, Math.max(spin, Math.ceil(3 * r.ms)));
    }
    expect(heldRounds).toBeGreaterThan(0);
    expect(mixer.jobs.length).toBe(4 * 3 * 30);
    // Downloads queued behind more work, then every output (and the delta states) disposed at once: a
    // download is an op reading its tensor too.
    let downloads: Array<Array<Promise<ArrayLike<number>>>> = [];
    const heldSpin = Math.min(2 * SPIN_CAP_MS, Math.max(1000, 3 * spin));
    const held = whileHeld(
      streams,
      heldSpin,
      () => {
        downloads = mixer.jobs.map((j) => mixer.fetch(j));
        for (const d of downloads) for (const p of d) p.catch(() => {}); // awaited below
        mixer.dispose();
      },
      (ss) => ss.every((x) => x.pending > 0),
    );
    if (!held.held) console.log(`[concurrency] the download/dispose phase outlasted its spin (${held.ms.toFixed(0)} ms): a loaded machine`);
    expect(mixer.jobs.every((j) => j.outs.every(([t]) => t.isDisposed))).toBe(true);
    const failures: string[] = [];
    for (let i = 0; i < downloads.length; i++) {
      const m = mixer.verify(mixer.jobs[i]!, await within(Promise.all(downloads[i]!), 30_000 + heldSpin, `downloads of disposed outputs (job #${i})`));
      if (m) failures.push(m);
    }
    expectNoFailures(failures, `${name}: inputs and outputs disposed in flight`);
    shared.dispose();
    for (const s of streams) s.dispose();
    await expectMemoryAt(ctx, base, `${name}: inputs disposed in flight`);
  });

  test('the matrix, layouts, delta layer and states disposed while ops that read them are queued', async () => {
    const ctx = getContext();
    const seed = seedFor(`concurrency dispose weights ${name}`);
    const base = await memoryMark(ctx);
    const s = ctx.createStream();
    const t = ctx.createStream();
    const shared = ops.createShared(sk, ctx, seed);
    const mixer = new ops.Mixer(sk, [s, t], shared, { seed, label: `${name} dispose-weights`, kinds: ['spmm', 'attention', 'delta', 'xstream'] });
    // Enqueued, then every BlockSparseMatrix, BlockLayout, the DeltaLinear and its states disposed, all while
    // the ops are still queued behind the spin.
    const held = whileHeld([s, t], 1000, () => {
      ops.enqueueRoundRobin(mixer, 25);
      const states = mixer.deltaStates.filter((x) => x !== null).map((x) => x!.state);
      expect(states.length).toBeGreaterThan(0);
      shared.dispose();
      for (const st of states) st.dispose();
    });
    if (!held.held) console.log(`[concurrency] the enqueue/dispose phase outlasted its spin (${held.ms.toFixed(0)} ms): a loaded machine`);

    // Using them now is a typed error; the queued ops are unaffected.
    const x = sk.Tensor.zeros([1, 20], { context: ctx });
    expect(() => sk.spmm(x, shared.mats.float32!.W)).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
    const q = sk.Tensor.zeros([1, 1, 67, 16], { context: ctx });
    expect(() => sk.blockSparseAttention(q, q, q, shared.layouts[0]!.layout)).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
    expect(() => shared.delta.layer.createState(1)).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
    x.dispose();
    q.dispose();

    const { checked, failures } = await within(mixer.check(), 30_000, 'ops whose weights were disposed');
    expectNoFailures(failures, `${name}: weights disposed in flight`);
    expect(checked).toBe(50);
    mixer.dispose();
    s.dispose();
    t.dispose();
    await expectMemoryAt(ctx, base, `${name}: weights disposed in flight`);
  });

  test(`worker_threads: ${WORKERS} workers with their own Context run checked mixed ops while the main thread does`, async () => {
    const lib = await compiled();
    const perStream = 100;
    const workers = Array.from({ length: WORKERS }, (_, index) =>
      startWorker({ concurrencyFixture: 'mixed', compiled: lib, device: name, seed: seedFor(`concurrency worker ${index} ${name}`), index, streams: 3, perStream }),
    );
    await Promise.all(workers.map((w) => w.next(30_000, 'loading the library')));

    // The main thread, on the shared test context; all start at once.
    const ctx = getContext();
    const seed = seedFor(`concurrency main with workers ${name}`);
    const base = await memoryMark(ctx);
    const streams = Array.from({ length: 3 }, () => ctx.createStream());
    const shared = ops.createShared(sk, ctx, seed);
    const mixer = new ops.Mixer(sk, streams, shared, { seed, label: `${name} main` });
    const reports = Promise.all(workers.map((w) => w.next(60_000, 'running the mixed ops')));
    for (const w of workers) w.worker.postMessage('go');
    const mainStart = Date.now();
    ops.enqueueRoundRobin(mixer, perStream);
    const main = await within(mixer.check(), 60_000, 'the main thread with workers');
    const mainEnd = Date.now();

    const done = await reports;
    await within(Promise.all(workers.map((w) => w.exit)), 10_000, 'the workers exiting');
    for (const r of done) {
      if (r.failureCount > 0) expectNoFailures(r.failures, `${name}: worker ${r.index} (${r.failureCount} in all)`);
      expect(r.enqueued).toBe(3 * perStream);
      expect(r.checked).toBe(3 * perStream);
      expect(r.memory[1]).toEqual(r.memory[0]); // each worker's context back to its baseline
    }
    expectNoFailures(main.failures, `${name}: main thread with workers`);
    expect(main.checked).toBe(3 * perStream);
    // The five threads' op phases overlapped: at one moment all of them were enqueueing or checking.
    const starts = [mainStart, ...done.map((r) => r.opsStart)];
    const ends = [mainEnd, ...done.map((r) => r.opsEnd)];
    expect(Math.max(...starts)).toBeLessThan(Math.min(...ends));

    mixer.dispose();
    shared.dispose();
    for (const s of streams) s.dispose();
    await expectMemoryAt(ctx, base, `${name}: main thread with workers`);
  }, 90_000);

  test('workers terminated, or ending, with work pending exit promptly', async () => {
    const lib = await compiled();
    // Queued on each of 3 streams: 40 spins (CPU: 500 ms each, 20 s in all; CUDA: 50 ms each, because work
    // already issued to the GPU is waited for at exit and a CUDA stream issues its queue at once), plus ops.
    const spinMs = name === 'cuda' ? 50 : 500;
    const bound = name === 'cuda' ? 15_000 : 5_000;
    const a = startWorker({ concurrencyFixture: 'pending', compiled: lib, device: name, seed: seedFor(`pending ${name}`), spinMs });
    const queued = await a.next(30_000, 'queueing work');
    expect(queued.queued!.every((n) => n > 40)).toBe(true);
    const t0 = Date.now();
    await within(a.worker.terminate(), 30_000, 'worker.terminate() with work pending');
    expect(Date.now() - t0).toBeLessThan(bound);

    // Ending on its own (nothing awaited): its event loop empties and the thread exits.
    const b = startWorker({ concurrencyFixture: 'pending', compiled: lib, device: name, seed: seedFor(`natural ${name}`), spinMs, end: 'natural' });
    await b.next(30_000, 'queueing work');
    const t1 = Date.now();
    expect(await within(b.exit, 30_000, 'a worker ending with work pending')).toBe(0);
    expect(Date.now() - t1).toBeLessThan(bound);

    // This thread's context still works.
    const ctx = getContext();
    const v = sk.Tensor.from([1, 2, 3], [3], { context: ctx });
    expect(Array.from(await v.cast('bfloat16').toFloat32Array())).toEqual([1, 2, 3]);
    v.dispose();
  }, 60_000);

  test('a stream disposed with work pending finishes it; its tensors stay readable on another stream', async () => {
    const ctx = getContext();
    const seed = seedFor(`concurrency stream dispose ${name}`);
    const base = await memoryMark(ctx);
    const shared = ops.createShared(sk, ctx, seed);
    let s!: ReturnType<typeof ctx.createStream>;
    let other!: ReturnType<typeof ctx.createStream>;
    let mixer!: InstanceType<typeof ops.Mixer>;
    let downloads: Array<Array<Promise<ArrayLike<number>>>> = [];
    await withHeldRetries(`${name}: stream disposed with work pending`, 150, async (spin) => {
      s = ctx.createStream();
      other = ctx.createStream();
      mixer = new ops.Mixer(sk, [s, other], shared, { seed, label: `${name} stream-dispose` });
      const r = whileHeld([s], spin, () => {
        ops.enqueueRoundRobin(mixer, 30);
        downloads = mixer.jobs.map((j) => mixer.fetch(j)); // issued before the dispose
      });
      if (!r.held) {
        await Promise.all(downloads.map((d) => Promise.allSettled(d)));
        mixer.dispose();
        s.dispose();
        other.dispose();
      }
      return r;
    });
    expect(s.pending).toBeGreaterThan(0);
    s.dispose();
    expect(() => sk.Tensor.zeros([1], { stream: s })).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
    const last = mixer.jobs[mixer.jobs.length - 1]!.outs[0]![0];
    expect(() => last.cast('float32', { stream: s })).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
    const W = shared.mats.float32!.W;
    const xk = sk.Tensor.zeros([1, W.shape[1]], { context: ctx });
    expect(() => sk.spmm(xk, W, { stream: s })).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
    xk.dispose();

    // Queued work finishes: every download issued before the dispose resolves, with the right values.
    const settled = await within(Promise.all(downloads.map((d) => Promise.allSettled(d))), 20_000, 'downloads queued before stream.dispose()');
    const failures: string[] = [];
    settled.forEach((res, i) => {
      const job = mixer.jobs[i]!;
      const bad = res.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
      if (bad) failures.push(`job #${i} ${job.kind}: download rejected: ${String(bad.reason)}`);
      else {
        const m = mixer.verify(job, res.map((r) => (r as PromiseFulfilledResult<ArrayLike<number>>).value));
        if (m) failures.push(m);
      }
    });
    expectNoFailures(failures, `${name}: work queued before stream.dispose()`);

    // A tensor made on the disposed stream: reading it there is refused, on another stream it works.
    const onS = mixer.jobs.filter((j) => j.si === 0).flatMap((j) => j.outs.filter(([t]) => t._home === s));
    expect(onS.length).toBeGreaterThan(0);
    await expect(within(onS[0]![0].toArray(), 10_000, 'toArray on a disposed stream')).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
    const again = await within(mixer.check(ctx.stream), 20_000, 'reading on the default stream');
    expectNoFailures(again.failures, `${name}: reading after stream.dispose()`);

    mixer.dispose();
    shared.dispose();
    other.dispose();
    await expectMemoryAt(ctx, base, `${name}: stream disposed with work pending`);
  });

  test('a context disposed with work pending settles every download (dispose and asyncDispose)', async () => {
    const device = name === 'cuda' ? 'cuda' : 'cpu';
    for (const how of ['dispose', 'asyncDispose'] as const) {
      const seed = seedFor(`concurrency context ${how} ${name}`);
      let c!: InstanceType<typeof sk.Context>;
      let streams: Array<ReturnType<typeof c.createStream>> = [];
      let shared!: ReturnType<typeof ops.createShared>;
      let mixer!: InstanceType<typeof ops.Mixer>;
      let downloads: Array<Array<Promise<ArrayLike<number>>>> = [];
      await withHeldRetries(`${name}: context.${how}() with work pending`, 100, async (spin) => {
        c = new sk.Context({ device });
        streams = [c.stream, c.createStream(), c.createStream()];
        shared = ops.createShared(sk, c, seed);
        mixer = new ops.Mixer(sk, streams, shared, { seed, label: `${name} context-${how}` });
        const r = whileHeld(
          streams,
          spin,
          () => {
            ops.enqueueRoundRobin(mixer, 20);
            downloads = mixer.jobs.map((j) => mixer.fetch(j));
          },
          (ss) => ss.every((x) => x.pending > 0),
        );
        if (!r.held) {
          await Promise.all(downloads.map((d) => Promise.allSettled(d)));
          mixer.dispose();
          shared.dispose();
          c.dispose();
        }
        return r;
      });
      expect(streams.every((s) => s.pending > 0)).toBe(true);
      if (how === 'dispose') c.dispose();
      else await within(c[Symbol.asyncDispose](), 20_000, 'context[Symbol.asyncDispose]() with work pending');
      expect(c.isDisposed).toBe(true);

      const settled = await within(Promise.all(downloads.map((d) => Promise.allSettled(d))), 20_000, `downloads queued before context.${how}()`);
      const failures: string[] = [];
      let resolved = 0;
      settled.forEach((res, i) => {
        const job = mixer.jobs[i]!;
        const rejected = res.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        // Rejecting is acceptable only with a typed cancellation / disposal error.
        for (const r of rejected) {
          if (!['ERR_CANCELLED', 'ERR_DISPOSED'].includes(codeOf(r.reason) ?? '')) failures.push(`job #${i} ${job.kind}: rejected with ${String(r.reason)}`);
        }
        if (rejected.length > 0) return;
        resolved++;
        const m = mixer.verify(job, res.map((r) => (r as PromiseFulfilledResult<ArrayLike<number>>).value));
        if (m) failures.push(m);
      });
      expectNoFailures(failures, `${name}: context.${how}() with work pending`);
      // The documented behaviour: queued work still finishes in the background.
      expect(resolved).toBe(mixer.jobs.length);

      // Everything of the context is disposed; using it is a typed error.
      expect(mixer.jobs.every((j) => j.outs.every(([t]) => t.isDisposed))).toBe(true);
      expect(() => c.memory()).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
      expect(() => sk.Tensor.from([1], [1], { context: c })).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
      await expect(within(mixer.jobs[0]!.outs[0]![0].toArray(), 10_000, 'toArray after context.dispose()')).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
      mixer.dispose();
      shared.dispose();
    }
    // The test context is unaffected.
    const v = sk.Tensor.from([4, 5], [2], { context: getContext() });
    expect(Array.from(await v.toArray())).toEqual([4, 5]);
    v.dispose();
  });
});
