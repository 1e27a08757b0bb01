/**
 * fast-check plumbing of the reliability suite: seeding, case counting, and the one rule every generated
 * case is judged by: it ends in a *typed* error (TypeError / RangeError naming an argument, or a
 * SparseKernelsError with a stable code) or in a correct result, and it leaves no tensor behind.
 *
 * Seeds: SPARSE_KERNELS_FC_SEED, else the run's base seed (SPARSE_KERNELS_TEST_SEED or the clock, see
 * helpers/random.ts), so every CI run explores new cases and any failure can be replayed: the failure message
 * starts with the environment variable to set, followed by fast-check's own seed / path / counterexample.
 * Each property derives its seed from the base seed and its name, so adding or reordering properties does
 * not change what the others generate.
 */
import { writeFileSync } from 'node:fs';

import fc from 'fast-check';

import type { Context } from '../../../lib/context';
import { BASE_SEED } from '../../helpers/random';
import { CASE_MINIMUMS, type CaseArea } from './budget';

export { fc };

export const FC_SEED: number = process.env.SPARSE_KERNELS_FC_SEED ? Number(process.env.SPARSE_KERNELS_FC_SEED) >>> 0 : BASE_SEED >>> 0;

/** FNV-1a of the name, mixed with the base seed. */
export function seedFor(name: string): number {
  let h = (0x811c9dc5 ^ FC_SEED) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h | 0;
}

const counts = new Map<CaseArea, number>();

/**
 * SPARSE_KERNELS_FC_TRACE=<file>: every case is written to the file before it runs (overwriting the last),
 * so a case that hangs or crashes the process can be read back from it.
 */
const TRACE = process.env.SPARSE_KERNELS_FC_TRACE;
function traceCase(name: string, v: unknown): void {
  const text = fc.stringify(v);
  writeFileSync(TRACE!, `${name}\n${text}\n`);
}

/** Adds `n` generated cases to an area's count (properties count themselves; the native child reports its own). */
export function addCases(area: CaseArea, n: number): void {
  counts.set(area, (counts.get(area) ?? 0) + n);
}

export function casesOf(area: CaseArea): number {
  return counts.get(area) ?? 0;
}

/**
 * Registers the afterAll check of a property file: it generated at least its minimum (budget.ts). Prints the
 * count with SPARSE_KERNELS_FC_VERBOSE=1.
 */
export function expectCaseBudget(area: CaseArea): void {
  afterAll(() => {
    const n = casesOf(area);
    if (process.env.SPARSE_KERNELS_FC_VERBOSE === '1') process.stdout.write(`reliability ${area}: ${n} generated cases (seed ${FC_SEED})\n`);
    expect(n).toBeGreaterThanOrEqual(CASE_MINIMUMS[area]);
  });
}

function replayNote(name: string, e: unknown): Error {
  let msg = e instanceof Error ? e.message : String(e);
  // fast-check keeps the predicate's own error as the cause: that is the message that says what went wrong.
  const cause = e instanceof Error ? (e as { cause?: unknown }).cause : undefined;
  if (cause instanceof Error) msg += `\nCaused by: ${cause.message}\n${String(cause.stack ?? '').split('\n').slice(1, 8).join('\n')}`;
  else if (cause !== undefined) msg += `\nCaused by: ${String(cause)}`;
  const err = new Error(`property "${name}" failed; replay with SPARSE_KERNELS_FC_SEED=${FC_SEED} (-t "${name}")\n${msg}`);
  if (e instanceof Error && e.stack) err.stack = `${err.message}\n${e.stack.split('\n').slice(1).join('\n')}`;
  return err;
}

/** Runs a synchronous property for `numRuns` cases, counting each executed case for `area`. */
export function checkProperty<T>(area: CaseArea, name: string, arb: fc.Arbitrary<T>, predicate: (v: T) => void, numRuns: number): void {
  const prop = fc.property(arb, (v) => {
    if (TRACE) traceCase(name, v);
    predicate(v);
    addCases(area, 1); // after: a case skipped by fc.pre() is not counted
  });
  try {
    fc.assert(prop, { seed: seedFor(name), numRuns });
  } catch (e) {
    throw replayNote(name, e);
  }
}

/** Runs an asynchronous property (cases that compute and check results). */
export async function checkAsyncProperty<T>(
  area: CaseArea,
  name: string,
  arb: fc.Arbitrary<T>,
  predicate: (v: T) => Promise<void>,
  numRuns: number,
): Promise<void> {
  const prop = fc.asyncProperty(arb, async (v) => {
    if (TRACE) traceCase(name, v);
    await predicate(v);
    addCases(area, 1);
  });
  try {
    await fc.assert(prop, { seed: seedFor(name), numRuns });
  } catch (e) {
    throw replayNote(name, e);
  }
}

// ---- the outcome rule ----

/**
 * Messages of errors that JavaScript itself throws from a bug (a property read on undefined, a bad typed
 * array length, ...). A TypeError / RangeError with such a message is not a validation error even though
 * its class matches.
 */
const ENGINE_MESSAGE =
  /Cannot read propert|Cannot set propert|of undefined|of null|is not a function|is not iterable|is not a constructor|Invalid (typed )?array length|Invalid array buffer length|Array buffer allocation failed|Maximum call stack|Cannot convert|Cannot mix BigInt|Reduce of empty array|Cannot destructure|Offset is outside|Start offset|toFixed\(\) digits|Invalid count value|Invalid string length/;

/** Codes a generated case may legitimately end with, besides argument errors. */
const RUNTIME_CODES = new Set(['ERR_DISPOSED', 'ERR_OUT_OF_MEMORY', 'ERR_INVALID_ARG', 'ERR_SHAPE']);

export type Outcome = 'TypeError' | 'RangeError' | 'ShapeError' | 'ERR_DISPOSED' | 'ERR_OUT_OF_MEMORY' | 'ERR_INVALID_ARG' | string;

function wordPattern(names: readonly string[]): RegExp {
  const esc = names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`(^|[^A-Za-z0-9_])(${esc.join('|')})([^A-Za-z0-9_]|$)`);
}

/**
 * Classifies an error a generated case threw, or fails the test. Realm-agnostic on purpose: errors thrown by
 * the addon are instances of the main realm's classes, which jest's sandbox does not see as its own, so the
 * check reads `name` and `code` rather than using instanceof. `names`: the arguments of the call; a TypeError
 * or RangeError must name one of them (the one-message-format rule of lib/validate.ts).
 */
export function classifyError(e: unknown, names: readonly string[], label: string, extraCodes: readonly string[] = []): Outcome {
  const err = e as { name?: unknown; message?: unknown; code?: unknown; stack?: unknown } | null;
  const describeIt = () => (e instanceof Error ? `${e.name}: ${e.message}\n${String(e.stack ?? '').split('\n').slice(1, 6).join('\n')}` : String(e));
  if (err === null || typeof err !== 'object' || typeof err.message !== 'string' || err.message.length === 0) {
    throw new Error(`${label}: threw a non-error value or an error without a message: ${describeIt()}`);
  }
  if (typeof err.code === 'string' && (RUNTIME_CODES.has(err.code) || extraCodes.includes(err.code))) {
    if (err.code === 'ERR_SHAPE') {
      if (!wordPattern(names).test(err.message)) throw new Error(`${label}: ShapeError names none of ${names.join(', ')}: ${describeIt()}`);
      return 'ShapeError';
    }
    return err.code as Outcome;
  }
  if (err.name === 'TypeError' || err.name === 'RangeError' || err.name === 'ShapeError') {
    if (ENGINE_MESSAGE.test(err.message)) throw new Error(`${label}: an engine error escaped validation: ${describeIt()}`);
    if (!wordPattern(names).test(err.message)) throw new Error(`${label}: ${err.name} names none of ${names.join(', ')}: ${describeIt()}`);
    return err.name as Outcome;
  }
  throw new Error(`${label}: not a typed error: ${describeIt()}`);
}

/** Runs `fn`; returns ['ok', value] or [outcome, error] after classifying the error. */
export function attempt<T>(
  fn: () => T,
  names: readonly string[],
  label: string,
  extraCodes: readonly string[] = [],
): { ok: true; value: T } | { ok: false; outcome: Outcome; error: unknown } {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    return { ok: false, outcome: classifyError(e, names, label, extraCodes), error: e };
  }
}

/** Same for promises (builders that reject instead of throwing). */
export async function attemptAsync<T>(
  fn: () => Promise<T>,
  names: readonly string[],
  label: string,
): Promise<{ ok: true; value: T } | { ok: false; outcome: Outcome; error: unknown }> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    return { ok: false, outcome: classifyError(e, names, label), error: e };
  }
}

// ---- memory ----

export interface MemoryMark {
  tensors: number;
  deviceBytes: number;
  hostBytes: number;
}

/** Waits for every stream of the context and swallows the errors the cases left for synchronize(). */
export async function drain(ctx: Context): Promise<void> {
  for (let i = 0; i < 3; i++) {
    try {
      await ctx.synchronize();
      return;
    } catch {
      // an error of an earlier case (e.g. ERR_OUT_OF_MEMORY): reported once, then cleared
    }
  }
  await ctx.synchronize();
}

function readMark(ctx: Context): MemoryMark {
  const m = ctx.memory();
  return { tensors: m.tensors, deviceBytes: m.deviceBytes, hostBytes: m.hostBytes };
}

/** The live tensors and bytes once the context is idle (frees of finished work have landed). */
export async function memoryMark(ctx: Context): Promise<MemoryMark> {
  await drain(ctx);
  return readMark(ctx);
}

/**
 * A documented, bounded cache an op may legitimately leave filled (e.g. the device copies of the dense causal
 * layouts of the PBS fallback, an LRU of 8 layouts): survivors it recognises, at most `max` of them.
 */
export interface CacheAllowance {
  what: string;
  max: number;
  owns(t: { dtype: string; rank: number; byteLength: number }): boolean;
}

/** Live tensors and bytes are back to the mark: no case leaked (error paths included). */
export async function expectMemoryAt(ctx: Context, mark: MemoryMark, label: string, cache?: CacheAllowance): Promise<void> {
  await drain(ctx);
  const now = readMark(ctx);
  if (cache && now.tensors > mark.tensors) {
    const cached: Array<{ byteLength: number }> = [];
    for (const ref of ctx._owned) {
      const t = ref.deref() as { dtype: string; rank: number; byteLength: number; isDisposed: boolean } | undefined;
      if (t && !t.isDisposed && cache.owns(t)) cached.push(t);
    }
    const bytes = cached.reduce((a, t) => a + t.byteLength, 0);
    const extraBytes = now.deviceBytes + now.hostBytes - mark.deviceBytes - mark.hostBytes;
    if (cached.length <= cache.max && now.tensors - mark.tensors <= cached.length && extraBytes <= bytes) return;
  }
  if (now.tensors !== mark.tensors || now.deviceBytes !== mark.deviceBytes || now.hostBytes !== mark.hostBytes) {
    // Name the survivors (the context tracks its tensors weakly) so a leak points at its op.
    const live: string[] = [];
    for (const ref of ctx._owned) {
      const t = ref.deref() as { toString(): string } | undefined;
      if (t && live.length < 12) live.push(t.toString());
    }
    throw new Error(`${label}: memory did not return to its baseline: ${JSON.stringify(mark)} -> ${JSON.stringify(now)}; live: ${live.join(', ')}`);
  }
}

// ---- common arbitraries ----

/** Values no numeric argument accepts (wrong type). */
export const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(null, undefined, '', '1', '64', 'float32', true, false, [], {}, [1, 2], { length: 1 }, () => 1),
  fc.constantFrom<unknown>(Symbol('s'), BigInt(7), new Date(0), new Float64Array(2), new ArrayBuffer(8), /x/),
  fc.string({ maxLength: 8 }),
);

/** Numbers an integer size / index argument must reject (or accept only in range). */
export const badNumber: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(NaN, Infinity, -Infinity, -1, -0.5, 0.5, 1.5, 2 ** 31, 2 ** 31 - 1, -(2 ** 31) - 1, 2 ** 53, 2 ** 60, 1e300, -1e300, Number.MIN_VALUE, -0),
  fc.double({ noNaN: false }),
  fc.integer({ min: -(2 ** 31), max: -1 }),
);

/** Any value for an argument: mostly `valid`, sometimes a bad number, sometimes junk. */
export function mostly<T>(valid: fc.Arbitrary<T>, weightValid = 6): fc.Arbitrary<T | unknown> {
  return fc.oneof({ weight: weightValid, arbitrary: valid as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: badNumber }, { weight: 1, arbitrary: junk });
}

/** An options object: undefined, or a record of maybe-invalid fields, sometimes with an unknown key, sometimes not an object. */
export function optionsOf(fields: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<unknown> {
  const rec = fc.record(fields, { requiredKeys: [] });
  return fc.oneof(
    { weight: 12, arbitrary: rec },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: rec.map((o) => ({ ...o, unknownOption: 1 })) },
    { weight: 1, arbitrary: fc.constantFrom<unknown>(null, 5, 'options', [], new Float32Array(1)) },
  );
}

/** The documented notion of an options object: an object literal (not an array, typed array, RegExp, Date, class instance). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || ArrayBuffer.isView(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === null || Object.getPrototypeOf(proto) === null;
}
