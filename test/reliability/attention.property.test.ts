/**
 * Property tests of block-sparse attention: the BlockLayout builders (random geometry, NaN / negative /
 * fractional / huge lengths, random and malformed lists: out of range, unsorted, negative, counts too large,
 * overlapping, wrong lengths) and blockSparseAttention (random shapes, dtypes, layouts, options, disposed and
 * foreign inputs). Every case is judged against a model of the documented rules, written independently of
 * lib/attention: a valid call must succeed (and a layout must keep exactly the blocks its inputs mean, a
 * small attention must match the float64 reference), an invalid one must throw a typed error naming an
 * argument and allocate nothing. Huge geometries must be refused quickly instead of building for minutes.
 */
import { BlockLayout, blockSparseAttention } from '../../lib/attention';
import type { Context } from '../../lib/context';
import type { FloatDType } from '../../lib/dtype';
import { Tensor } from '../../lib/tensor';
import { cpuContext, cudaUsable, describeGpu, gpuContext, REQUIRE_GPU } from '../helpers/gpu';
import { relError, TOL } from '../helpers/tolerance';
import { keepFromLists, referenceAttention } from '../reference/attention';
import { type CaseArea } from './helpers/budget';
import { normalsFrom, poison, tensorOf } from './helpers/data';
import { attempt, badNumber, isPlainObject, checkAsyncProperty, checkProperty, expectCaseBudget, expectMemoryAt, fc, junk, memoryMark, mostly } from './helpers/fc';
import { opFixtures } from './helpers/fixtures';

const AREA: CaseArea = 'attention';
expectCaseBudget(AREA);

const isInt = (v: unknown, lo: number, hi: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= lo && v <= hi;
const INT32_MAX = 2 ** 31 - 1;
/**
 * Size zones of a builder case (rows = batch x heads x queryBlocks, entries = rows x the longest row):
 *  - small (grid <= SMALL_GRID): a valid case must build, and is checked block by block;
 *  - absurd (rows > ABSURD_ROWS or entries > ABSURD_ENTRIES: gigabytes of lists, or more than a JS heap
 *    holds): it must be refused with a typed error within REFUSAL_LIMIT_MS (it used to build for minutes,
 *    then crash the process);
 *  - in between: legitimately large layouts that take the builders seconds; skipped (fc.pre), not timed.
 */
const SMALL_GRID = 2 ** 16;
const ABSURD_ROWS = 2 ** 23;
const ABSURD_ENTRIES = 2 ** 31;
const REFUSAL_LIMIT_MS = 2_000;

// ---- builders ----

const lengthArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 12, arbitrary: fc.nat(700) },
  { weight: 1, arbitrary: fc.constantFrom(INT32_MAX, 2 ** 30, 2 ** 27, 2 ** 24, 2 ** 21) },
  { weight: 1, arbitrary: badNumber },
  { weight: 1, arbitrary: junk },
);
const blockSizeArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom(64, 128, undefined) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(32, 256, 0, 63.5, '64', null) },
);
const causalArb: fc.Arbitrary<unknown> = fc.oneof({ weight: 8, arbitrary: fc.constantFrom(true, false, undefined) }, { weight: 1, arbitrary: fc.constantFrom<unknown>(1, 'yes', null) });
const smallCount: fc.Arbitrary<unknown> = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 1, max: 3 }) }, { weight: 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: badNumber }, { weight: 1, arbitrary: junk });

interface Geometry {
  batch: number;
  heads: number;
  queryLength: number;
  keyLength: number;
  blockSize: number;
  causal: boolean;
  qB: number;
  kB: number;
}

/** The builders' shared geometry rules (BlockLayoutOptions); undefined when invalid. */
function modelGeometry(o: Record<string, unknown>, lengthKey: 'queryLength' | 'seqLen', allowKeyLength: boolean, fixedCausal?: boolean): Geometry | undefined {
  const batch = o.batch === undefined ? 1 : o.batch;
  const heads = o.heads === undefined ? 1 : o.heads;
  const ql = o[lengthKey];
  const kl = allowKeyLength && o.keyLength !== undefined ? o.keyLength : ql;
  const bs = o.blockSize === undefined ? 128 : o.blockSize;
  const causal = fixedCausal ?? (o.causal === undefined ? true : o.causal);
  if (!isInt(batch, 1, INT32_MAX) || !isInt(heads, 1, INT32_MAX) || !isInt(ql, 0, INT32_MAX) || !isInt(kl, 0, INT32_MAX)) return undefined;
  if (bs !== 64 && bs !== 128) return undefined;
  if (typeof causal !== 'boolean') return undefined;
  if (causal && kl !== ql) return undefined;
  return { batch, heads, queryLength: ql, keyLength: kl, blockSize: bs, causal, qB: Math.ceil(ql / bs), kB: Math.ceil(kl / bs) };
}

/** Which blocks of row (qb) a builder keeps, and whether each kept one must be full (else masked). */
type KeepRule = (row: number, qb: number, kb: number) => boolean;

function expectLayout(layout: BlockLayout, g: Geometry, keep: KeepRule, label: string, userLists: boolean): void {
  expect(layout.queryBlocks).toBe(g.qB);
  expect(layout.keyBlocks).toBe(g.kB);
  expect(layout.causal).toBe(g.causal);
  expect(layout.batch).toBe(g.batch);
  expect(layout.heads).toBe(g.heads);
  const l = layout.toLists();
  const rows = g.batch * g.heads * g.qB;
  const partialLast = g.keyLength % g.blockSize !== 0 ? g.kB - 1 : -1;
  let kept = 0;
  for (let r = 0; r < rows; r++) {
    const qb = r % g.qB;
    const full = Array.from(l.fullIndices.subarray(r * layout.maxBlocks, r * layout.maxBlocks + l.fullCounts[r]!));
    const masked = Array.from(l.maskIndices.subarray(r * layout.maskMaxBlocks, r * layout.maskMaxBlocks + l.maskCounts[r]!));
    for (let kb = 0; kb < g.kB; kb++) {
      const want = keep(r, qb, kb);
      const inFull = full.includes(kb);
      const inMasked = masked.includes(kb);
      if (want !== (inFull || inMasked) || (inFull && inMasked)) throw new Error(`${label}: row ${r} block ${kb}: keep ${want}, full ${inFull}, masked ${inMasked}`);
      // Builders: "a kept block is full only when every key in it is kept for every query in the block".
      // fromLists keeps the caller's choice (a masked block may be one that could have been full).
      const mustBeFull = kb !== partialLast && (!g.causal || kb < qb);
      if (want && !userLists && inFull !== mustBeFull) throw new Error(`${label}: row ${r} block ${kb} is ${inFull ? 'full' : 'masked'}`);
      if (want && userLists && inFull && !mustBeFull) throw new Error(`${label}: row ${r} block ${kb} is full but needs the mask`);
      if (want) kept++;
    }
  }
  expect(layout.keptBlocks()).toBe(kept);
}

/** The documented rules of fromLists input, independent of lib/: null when valid, else why not. */
function listsViolation(lists: Record<string, unknown>, g: Geometry): string | null {
  const rows = g.batch * g.heads * g.qB;
  const keys = Object.keys(lists);
  if (keys.some((k) => !['fullCounts', 'fullIndices', 'maskCounts', 'maskIndices'].includes(k))) return 'unknown key';
  const read = (a: unknown): number[] | null => {
    if (a instanceof Int32Array) return Array.from(a);
    if (!Array.isArray(a)) return null;
    return a.every((x) => isInt(x, -(2 ** 31), INT32_MAX)) ? (a as number[]) : null;
  };
  const pair = (ck: string, ik: string): { cnt: number[]; idx: number[]; cap: number } | string => {
    if (lists[ck] === undefined && lists[ik] === undefined) return { cnt: new Array(rows).fill(0), idx: [], cap: 0 };
    if (lists[ck] === undefined || lists[ik] === undefined) return 'half a pair';
    const cnt = read(lists[ck]);
    const idx = read(lists[ik]);
    if (!cnt || !idx) return 'not int32 arrays';
    if (cnt.length !== rows) return 'count length';
    if (rows === 0 ? idx.length !== 0 : idx.length % rows !== 0) return 'index length';
    const cap = rows === 0 ? 0 : idx.length / rows;
    if (cnt.some((c) => c < 0 || c > cap)) return 'count range';
    return { cnt, idx, cap };
  };
  const f = pair('fullCounts', 'fullIndices');
  const m = pair('maskCounts', 'maskIndices');
  if (typeof f === 'string') return f;
  if (typeof m === 'string') return m;
  const partialLast = g.keyLength % g.blockSize !== 0 ? g.kB - 1 : -1;
  for (let r = 0; r < rows; r++) {
    const qb = r % g.qB;
    const full = f.idx.slice(r * f.cap, r * f.cap + f.cnt[r]!);
    const masked = m.idx.slice(r * m.cap, r * m.cap + m.cnt[r]!);
    for (const list of [full, masked]) {
      if (list.some((x) => x < 0 || x >= g.kB)) return 'index range';
      if (list.some((x, i) => i > 0 && x <= list[i - 1]!)) return 'order';
    }
    if (full.some((x) => masked.includes(x))) return 'overlap';
    if (full.some((x) => x === partialLast)) return 'padding';
    if (g.causal && full.some((x) => x >= qb)) return 'causal';
  }
  return null;
}

/** Random lists for a geometry: valid ones from a mask, then 0-2 corruptions of the kinds the rules forbid. */
const listsArb = fc.record({
  seed: fc.integer(),
  density: fc.double({ min: 0, max: 1, noNaN: true }),
  extraCap: fc.nat(2),
  corruptions: fc.array(
    fc.record({
      what: fc.constantFrom('fullCounts', 'fullIndices', 'maskCounts', 'maskIndices'),
      how: fc.constantFrom('minus1', 'kB', 'int32max', 'int32min', 'plus1', 'minus1rel', 'swap', 'dup', 'drop', 'append', 'fraction', 'nan', 'string', 'float32', 'missing', 'overlap'),
      at: fc.nat(),
    }),
    { maxLength: 2 },
  ),
  asArray: fc.boolean(),
});

function buildLists(c: { seed: number; density: number; extraCap: number; corruptions: Array<{ what: string; how: string; at: number }>; asArray: boolean }, g: Geometry): Record<string, unknown> {
  const rows = g.batch * g.heads * g.qB;
  const partialLast = g.keyLength % g.blockSize !== 0 ? g.kB - 1 : -1;
  const u = normalsFrom(c.seed, rows * Math.max(1, g.kB));
  const fullRows: number[][] = [];
  const maskRows: number[][] = [];
  for (let r = 0; r < rows; r++) {
    const qb = r % g.qB;
    const full: number[] = [];
    const masked: number[] = [];
    for (let kb = 0; kb < g.kB; kb++) {
      if (Math.abs(u[r * g.kB + kb]!) > 2 * c.density) continue; // |N(0,1)| <= 2d: density-ish
      if (kb !== partialLast && (!g.causal || kb < qb) && u[r * g.kB + kb]! > 0) full.push(kb);
      else masked.push(kb);
    }
    fullRows.push(full);
    maskRows.push(masked);
  }
  const pack = (rs: number[][]) => {
    const cap = rs.reduce((m, x) => Math.max(m, x.length), 0) + c.extraCap;
    const cnt = rs.map((x) => x.length);
    const idx = new Array<number>(rows * cap).fill(0);
    rs.forEach((x, i) => x.forEach((v, j) => (idx[i * cap + j] = v)));
    return { cnt, idx };
  };
  const f = pack(fullRows);
  const m = pack(maskRows);
  const arrays: Record<string, number[] | undefined> = { fullCounts: f.cnt, fullIndices: f.idx, maskCounts: m.cnt, maskIndices: m.idx };
  const extra: Record<string, unknown> = {};
  for (const k of c.corruptions) {
    const a = arrays[k.what];
    if (!a) continue;
    const i = a.length > 0 ? k.at % a.length : 0;
    switch (k.how) {
      case 'minus1':
        if (a.length) a[i] = -1;
        break;
      case 'kB':
        if (a.length) a[i] = g.kB;
        break;
      case 'int32max':
        if (a.length) a[i] = INT32_MAX;
        break;
      case 'int32min':
        if (a.length) a[i] = -(2 ** 31);
        break;
      case 'plus1':
        if (a.length) a[i] = a[i]! + 1;
        break;
      case 'minus1rel':
        if (a.length) a[i] = a[i]! - 1;
        break;
      case 'swap':
        if (a.length > 1) [a[i], a[(i + 1) % a.length]] = [a[(i + 1) % a.length]!, a[i]!];
        break;
      case 'dup':
        if (a.length > 1) a[(i + 1) % a.length] = a[i]!;
        break;
      case 'drop':
        a.pop();
        break;
      case 'append':
        a.push(0);
        break;
      case 'fraction':
        if (a.length) extra[k.what] = a.map((x, j) => (j === i ? x + 0.5 : x));
        break;
      case 'nan':
        if (a.length) extra[k.what] = a.map((x, j) => (j === i ? NaN : x));
        break;
      case 'string':
        if (a.length) extra[k.what] = a.map((x, j) => (j === i ? String(x) : x));
        break;
      case 'float32':
        extra[k.what] = Float32Array.from(a);
        break;
      case 'missing':
        arrays[k.what] = undefined;
        break;
      case 'overlap': {
        // Copy a kept full block into the masked list of its row (a block in both lists).
        const r = rows > 0 ? k.at % rows : 0;
        if (f.cnt[r]! > 0 && m.cnt[r]! > 0) m.idx[r * (m.idx.length / rows)] = f.idx[r * (f.idx.length / rows)]!;
        break;
      }
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, a] of Object.entries(arrays)) {
    if (a === undefined) continue;
    out[key] = extra[key] ?? (c.asArray ? a : Int32Array.from(a));
  }
  return out;
}

const builderArb = fc.oneof(
  fc.record({ kind: fc.constant('denseCausal' as const), o: fc.record({ seqLen: lengthArb, blockSize: blockSizeArb }, { requiredKeys: [] }) }),
  fc.record({ kind: fc.constant('dense' as const), o: fc.record({ queryLength: lengthArb, keyLength: lengthArb, blockSize: blockSizeArb }, { requiredKeys: ['queryLength'] }) }),
  fc.record({
    kind: fc.constant('slidingWindow' as const),
    o: fc.record({ seqLen: lengthArb, windowBlocks: mostly(fc.integer({ min: 1, max: 6 })), sinkBlocks: mostly(fc.nat(3)), blockSize: blockSizeArb }, { requiredKeys: ['seqLen', 'windowBlocks'] }),
  }),
  fc.record({
    kind: fc.constant('fromBlockMask' as const),
    o: fc.record({ batch: smallCount, heads: smallCount, queryLength: lengthArb, keyLength: lengthArb, blockSize: blockSizeArb, causal: causalArb }, { requiredKeys: ['queryLength'] }),
    seed: fc.integer(),
    lenDelta: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -2, max: 2 }) }),
    notUint8: fc.oneof({ weight: 12, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  }),
  fc.record({
    kind: fc.constant('fromLists' as const),
    o: fc.record({ batch: smallCount, heads: smallCount, queryLength: lengthArb, keyLength: lengthArb, blockSize: blockSizeArb, causal: causalArb }, { requiredKeys: ['queryLength'] }),
    lists: listsArb,
    junkLists: fc.oneof({ weight: 15, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: junk }),
  }),
);

type BuilderCase = typeof builderArb extends fc.Arbitrary<infer T> ? T : never;

/** Runs one builder case: returns the layout (or the error) and what the model expects. */
function runBuilder(c: BuilderCase): void {
  const t0 = performance.now();
  const names = ['options', 'lists', 'mask', 'layout'];
  let g: Geometry | undefined;
  let keep: KeepRule | undefined;
  let call: () => BlockLayout;
  let validLists = true;
  switch (c.kind) {
    case 'denseCausal':
      g = modelGeometry(c.o, 'seqLen', false, true);
      keep = (_r, qb, kb) => kb <= qb;
      call = () => BlockLayout.denseCausal(c.o as never);
      break;
    case 'dense':
      g = modelGeometry(c.o, 'queryLength', true, false);
      keep = () => true;
      call = () => BlockLayout.dense(c.o as never);
      break;
    case 'slidingWindow': {
      g = modelGeometry(c.o, 'seqLen', false, true);
      const w = c.o.windowBlocks;
      const s = c.o.sinkBlocks === undefined ? 0 : c.o.sinkBlocks;
      if (!isInt(w, 1, INT32_MAX) || !isInt(s, 0, INT32_MAX)) g = undefined;
      keep = (_r, qb, kb) => kb <= qb && (kb >= qb - (w as number) + 1 || kb < Math.min(s as number, Math.max(0, qb - (w as number) + 1)));
      call = () => BlockLayout.slidingWindow(c.o as never);
      break;
    }
    case 'fromBlockMask': {
      g = modelGeometry(c.o, 'queryLength', true);
      const n = g ? g.batch * g.heads * g.qB * g.kB : 0;
      const small = g !== undefined && n <= SMALL_GRID;
      const len = small ? Math.max(0, n + c.lenDelta) : 1;
      const u = normalsFrom(c.seed, len);
      const mask = Uint8Array.from(u, (x) => (x > 0.3 ? 1 : 0));
      if (!small || len !== n || c.notUint8) validLists = false;
      const gg = g;
      keep = (r, qb, kb) => mask[r * gg!.kB + kb] !== 0 && (!gg!.causal || kb <= qb);
      call = () => BlockLayout.fromBlockMask((c.notUint8 ? Array.from(mask) : mask) as Uint8Array, c.o as never);
      break;
    }
    case 'fromLists': {
      g = modelGeometry(c.o, 'queryLength', true);
      const small = g !== undefined && g.batch * g.heads * g.qB * Math.max(1, g.kB) <= SMALL_GRID;
      // A large geometry gets no lists (an empty layout): valid whenever the geometry is.
      const lists = c.junkLists !== undefined ? c.junkLists : small ? buildLists(c.lists, g!) : {};
      if (!isPlainObject(lists)) validLists = false;
      else if (g !== undefined && small) validLists = listsViolation(lists, g) === null;
      else validLists = Object.keys(lists).length === 0;
      const gg = g;
      keep = (r, qb, kb) => {
        const l = lists as Record<string, ArrayLike<number>>;
        const rows = gg!.batch * gg!.heads * gg!.qB;
        const has = (ck: string, ik: string) => {
          const cnt = l[ck];
          const idx = l[ik];
          if (!cnt || !idx) return false;
          const cap = idx.length / rows;
          for (let t = 0; t < cnt[r]!; t++) if (idx[r * cap + t] === kb) return true;
          return false;
        };
        void qb;
        return has('fullCounts', 'fullIndices') || has('maskCounts', 'maskIndices');
      };
      call = () => BlockLayout.fromLists(lists as never, c.o as never);
      break;
    }
  }
  const grid = g ? g.batch * g.heads * g.qB * Math.max(1, g.kB) : 0;
  const rows = g ? g.batch * g.heads * g.qB : 0;
  let stride = 0;
  if (g && c.kind === 'denseCausal') stride = g.qB;
  else if (g && c.kind === 'dense') stride = g.kB;
  else if (g && c.kind === 'slidingWindow') stride = Math.min(g.qB, (c.o.windowBlocks as number) + ((c.o.sinkBlocks as number | undefined) ?? 0));
  const absurd = g !== undefined && (rows > ABSURD_ROWS || rows * stride > ABSURD_ENTRIES);
  const mustSucceed = g !== undefined && validLists && grid <= SMALL_GRID;
  // Valid, not small, not absurd: a legitimately large layout (seconds to build). Not this property's business.
  fc.pre(g === undefined || !validLists || mustSucceed || absurd);
  const r = attempt(call!, names, c.kind);
  const ms = performance.now() - t0;
  if (!r.ok) {
    if (mustSucceed) throw new Error(`valid ${c.kind} rejected: ${(r.error as Error).message}`);
    if (absurd && ms > REFUSAL_LIMIT_MS) throw new Error(`${c.kind} took ${ms.toFixed(0)} ms to refuse an absurd geometry`);
    return;
  }
  if (absurd) {
    r.value.dispose();
    throw new Error(`${c.kind} built an absurd layout (${rows} rows x ${stride}) in ${ms.toFixed(0)} ms`);
  }
  const layout = r.value;
  try {
    if (g === undefined || !validLists) throw new Error(`invalid ${c.kind} accepted: ${layout.toString()}`);
    if (grid <= SMALL_GRID) expectLayout(layout, g, keep!, c.kind, c.kind === 'fromLists');
  } finally {
    layout.dispose();
  }
}

// ---- blockSparseAttention ----

const dtypeArb = fc.oneof({ weight: 10, arbitrary: fc.constantFrom<unknown>('float32', 'float16', 'bfloat16') }, { weight: 1, arbitrary: fc.constantFrom<unknown>('int32', 'uint8') });

interface OpCase {
  b: number;
  hq: number;
  hk: number;
  n: number;
  nk: number;
  d: number;
  dtype: string;
  kDtype: string | undefined;
  vDtype: string | undefined;
  kDimsDelta: number[] | undefined;
  vDimsDelta: number[] | undefined;
  rankQ: number;
  layoutKind: 'denseCausal' | 'dense' | 'mask' | 'window';
  layoutN: number | undefined;
  layoutBatch: number;
  layoutHeads: number;
  blockSize: 64 | 128;
  maskSeed: number;
  options: unknown;
  foreign: 'none' | 'k' | 'disposedV' | 'disposedLayout' | 'notTensor' | 'notLayout';
  seed: number;
}

function opArb(cuda: boolean, small: boolean): fc.Arbitrary<OpCase> {
  const dim = (max: number) => (small ? fc.integer({ min: 1, max }) : fc.integer({ min: 0, max }));
  const headDim = cuda ? fc.constantFrom(64, 128) : fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 1, max: 40 }) }, { weight: small ? 0 : 1, arbitrary: fc.constantFrom(0, 1025, 4096) });
  const optionsArb = fc.oneof(
    { weight: 10, arbitrary: fc.record({ causal: fc.option(mostly(fc.boolean(), 12), { nil: undefined }), scale: fc.option(mostly(fc.double({ min: 0.01, max: 3, noNaN: true }), small ? 1000 : 3), { nil: undefined }), returnLse: fc.option(mostly(fc.boolean(), 12), { nil: undefined }), stream: fc.option(fc.constantFrom<unknown>('side', 'other', 'disposed', 5), { nil: undefined }) }, { requiredKeys: [] }) },
    { weight: small ? 0 : 1, arbitrary: fc.constantFrom<unknown>(null, 5, [], { scal: 1 }, { keyPermutation: 1 }) },
  );
  return fc.record({
    b: dim(2),
    hq: dim(4),
    hk: fc.integer({ min: small ? 1 : 0, max: 2 }),
    n: fc.integer({ min: small ? 1 : 0, max: small ? 140 : 150 }),
    // -1: the query length (causal attention needs equal lengths, so most cases use them).
    nk: fc.oneof({ weight: 3, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.integer({ min: small ? 1 : 0, max: small ? 140 : 150 }) }),
    d: headDim,
    dtype: cuda ? fc.constantFrom('float16', 'bfloat16') : (dtypeArb as fc.Arbitrary<string>),
    kDtype: small ? fc.constant(undefined) : fc.option(dtypeArb as fc.Arbitrary<string>, { nil: undefined, freq: 6 }),
    vDtype: small ? fc.constant(undefined) : fc.option(dtypeArb as fc.Arbitrary<string>, { nil: undefined, freq: 6 }),
    kDimsDelta: small ? fc.constant(undefined) : fc.option(fc.array(fc.integer({ min: -1, max: 1 }), { minLength: 4, maxLength: 4 }), { nil: undefined, freq: 8 }),
    vDimsDelta: small ? fc.constant(undefined) : fc.option(fc.array(fc.integer({ min: -1, max: 1 }), { minLength: 4, maxLength: 4 }), { nil: undefined, freq: 8 }),
    rankQ: small ? fc.constant(4) : fc.oneof({ weight: 12, arbitrary: fc.constant(4) }, { weight: 1, arbitrary: fc.constantFrom(3, 5) }),
    layoutKind: fc.constantFrom('denseCausal', 'dense', 'mask', 'window'),
    layoutN: small ? fc.constant(undefined) : fc.option(fc.integer({ min: 0, max: 150 }), { nil: undefined, freq: 8 }),
    layoutBatch: fc.constantFrom(1, 1, 1, 2),
    layoutHeads: fc.constantFrom(1, 1, 2, 4),
    blockSize: fc.constantFrom(64 as const, 128 as const),
    maskSeed: fc.integer(),
    options: optionsArb,
    foreign: small ? fc.constant('none' as const) : fc.oneof({ weight: 12, arbitrary: fc.constant('none' as const) }, { weight: 1, arbitrary: fc.constantFrom('k' as const, 'disposedV' as const, 'disposedLayout' as const, 'notTensor' as const, 'notLayout' as const) }),
    seed: fc.integer(),
  }) as fc.Arbitrary<OpCase>;
}


/** The model of blockSparseAttention's argument rules (its JSDoc, AttentionOptions, BlockLayout). */
function opValid(c: OpCase, cuda: boolean, causal: boolean, layoutOk: boolean, dims: { q: number[]; k: number[]; v: number[] }, dtypes: { q: string; k: string; v: string }): boolean {
  const o = c.options;
  if (o !== undefined && !isPlainObject(o)) return false;
  const opts = (o ?? {}) as Record<string, unknown>;
  if (Object.keys(opts).some((k) => !['causal', 'scale', 'returnLse', 'stream'].includes(k))) return false;
  if (opts.causal !== undefined && typeof opts.causal !== 'boolean') return false;
  if (opts.returnLse !== undefined && typeof opts.returnLse !== 'boolean') return false;
  if (opts.scale !== undefined) {
    const s = opts.scale;
    if (typeof s !== 'number' || !Number.isFinite(s) || !(Math.fround(s) > 0) || !Number.isFinite(Math.fround(s))) return false;
  }
  if (opts.stream !== undefined && opts.stream !== 'side') return false;
  if (c.foreign !== 'none') return false;
  if (!layoutOk) return false;
  const { q, k, v } = dims;
  if (q.length !== 4 || k.length !== 4 || v.length !== 4) return false;
  const floats = cuda ? ['float16', 'bfloat16'] : ['float32', 'float16', 'bfloat16'];
  if (!floats.includes(dtypes.q) || dtypes.k !== dtypes.q || dtypes.v !== dtypes.q) return false;
  const [b, hq, n, d] = q as [number, number, number, number];
  const [kb, hk, nk, kd] = k as [number, number, number, number];
  if (cuda ? ![64, 128, 256].includes(d) : d < 1 || d > 1024) return false;
  if (kb !== b || kd !== d || v.some((x, i) => x !== k[i])) return false;
  if (hq > 0 && (hk === 0 || hq % hk !== 0)) return false;
  if (causal && n !== nk) return false;
  return true;
}

function attentionProperties(backend: string, getCtx: () => Context, scale: number): void {
  const cuda = backend === 'cuda';
  const f = opFixtures(getCtx);
  const runs = (n: number) => Math.max(20, Math.round(n * scale));

  /** Builds the inputs of an op case (and its layout); returns what was built, for the call and for disposal. */
  function setup(c: OpCase, withData: boolean) {
    const { ctx } = f;
    if (c.nk < 0) c.nk = c.n;
    const qDims = c.rankQ === 4 ? [c.b, c.hq, c.n, c.d] : c.rankQ === 3 ? [c.hq, c.n, c.d] : [1, c.b, c.hq, c.n, c.d];
    const kDims = [c.b, c.hk, c.nk, c.d].map((x, i) => Math.max(0, x + (c.kDimsDelta?.[i] ?? 0)));
    const vDims = c.vDimsDelta ? kDims.map((x, i) => Math.max(0, x + c.vDimsDelta![i]!)) : kDims.slice();
    const mk = (dims: number[], dtype: string, seed: number, on: Context) => {
      // Argument cases need no data (and some are large): zeros. Value cases get fresh normals.
      if (!withData || dtype === 'int32' || dtype === 'uint8') return { t: Tensor.zeros(dims, { dtype: dtype as FloatDType, context: on }), exact: new Float32Array(0) };
      return tensorOf(on, normalsFrom(seed, dims.reduce((a, b) => a * b, 1), 1.3), dims, dtype as FloatDType);
    };
    const q = mk(qDims, c.dtype, c.seed, ctx);
    const k = mk(kDims, c.kDtype ?? c.dtype, c.seed + 1, c.foreign === 'k' ? f.other : ctx);
    const v = mk(vDims, c.vDtype ?? c.dtype, c.seed + 2, ctx);
    if (c.foreign === 'disposedV') v.t.dispose();
    const opts = isPlainObject(c.options) ? ({ ...c.options } as Record<string, unknown>) : {};
    const causal = opts.causal === undefined ? true : opts.causal === true;
    const ln = c.layoutN ?? c.n;
    const lnk = c.layoutN ?? c.nk;
    let layout: BlockLayout | undefined;
    try {
      switch (c.layoutKind) {
        case 'denseCausal':
          layout = BlockLayout.denseCausal({ seqLen: ln, blockSize: c.blockSize });
          break;
        case 'dense':
          layout = BlockLayout.dense({ queryLength: ln, keyLength: lnk, blockSize: c.blockSize });
          break;
        case 'window':
          layout = BlockLayout.slidingWindow({ seqLen: ln, windowBlocks: 1 + (c.maskSeed & 1), sinkBlocks: (c.maskSeed >> 1) & 1, blockSize: c.blockSize });
          break;
        case 'mask': {
          const lc = causal && ln === lnk;
          const qB = Math.ceil(ln / c.blockSize);
          const kB = Math.ceil(lnk / c.blockSize);
          const u = normalsFrom(c.maskSeed, c.layoutBatch * c.layoutHeads * qB * kB);
          layout = BlockLayout.fromBlockMask(Uint8Array.from(u, (x) => (x > -0.5 ? 1 : 0)), { batch: c.layoutBatch, heads: c.layoutHeads, queryLength: ln, keyLength: lnk, blockSize: c.blockSize, causal: lc });
          break;
        }
      }
    } catch {
      layout = BlockLayout.dense({ queryLength: ln + 1, keyLength: lnk, blockSize: c.blockSize }); // a mismatching one
    }
    if (c.foreign === 'disposedLayout') layout.dispose();
    if (opts.stream === 'side') opts.stream = f.side;
    else if (opts.stream === 'other') opts.stream = f.other.stream;
    else if (opts.stream === 'disposed') opts.stream = f.disposedStream;
    const options = isPlainObject(c.options) ? opts : c.options;
    const layoutOk =
      !layout.isDisposed &&
      layout.queryLength === qDims[2] &&
      layout.keyLength === kDims[2] &&
      (layout.batch === 1 || layout.batch === qDims[0]) &&
      (layout.heads === 1 || layout.heads === qDims[1]) &&
      layout.causal === causal;
    const dtypes = { q: c.dtype, k: c.kDtype ?? c.dtype, v: c.vDtype ?? c.dtype };
    const valid = opValid(c, cuda, causal, layoutOk, { q: qDims, k: kDims, v: vDims }, dtypes) && (c.foreign as string) !== 'k';
    return {
      q,
      k,
      v,
      layout,
      options,
      causal,
      valid,
      qDims,
      kDims,
      // Typed by hand: with options `as never` the overloads resolve to never.
      call: (): Tensor | { out: Tensor; lse: Tensor } =>
        blockSparseAttention(
          (c.foreign === 'notTensor' ? q.exact : q.t) as Tensor,
          k.t as Tensor,
          v.t as Tensor,
          (c.foreign === 'notLayout' ? { queryLength: ln } : layout) as BlockLayout,
          options as never,
        ),
      dispose() {
        q.t.dispose();
        k.t.dispose();
        v.t.dispose();
        layout!.dispose();
      },
    };
  }

  test('BlockLayout builders: valid geometries keep exactly the blocks their inputs mean; malformed or huge ones throw a typed error quickly', () => {
    checkProperty(AREA, `BlockLayout builders (${backend})`, builderArb, runBuilder, runs(cuda ? 0 : 13000));
  });

  test('blockSparseAttention: random arguments end in a typed error naming one, or in outputs of the right shape; nothing leaks', async () => {
    const mark = await memoryMark(f.ctx);
    checkProperty(AREA, `blockSparseAttention arguments (${backend})`, opArb(cuda, false), (c) => {
      const s = setup(c, false);
      const before = f.ctx.memory().tensors;
      try {
        const r = attempt(s.call, ['q', 'k', 'v', 'layout', 'options'], 'blockSparseAttention');
        if (!r.ok) {
          if (s.valid) throw new Error(`valid call rejected: ${(r.error as Error).message}`);
          expect(f.ctx.memory().tensors).toBeLessThanOrEqual(before);
          return;
        }
        const out = r.value instanceof Tensor ? r.value : r.value.out;
        const lse = r.value instanceof Tensor ? undefined : r.value.lse;
        try {
          if (!s.valid) throw new Error(`invalid call accepted (${JSON.stringify({ ...c, options: String(c.options) })})`);
          expect(out.dims).toEqual(s.qDims);
          expect(out.dtype).toBe(c.dtype);
          if (lse) expect(lse.dims).toEqual(s.qDims.slice(0, 3));
        } finally {
          out.dispose();
          lse?.dispose();
        }
      } finally {
        s.dispose();
      }
    }, runs(8500));
    await expectMemoryAt(f.ctx, mark, 'blockSparseAttention arguments');
  });

  test('blockSparseAttention: valid small problems match the float64 reference (poisoned outputs, odd sizes, GQA, broadcast layouts)', async () => {
    const mark = await memoryMark(f.ctx);
    await checkAsyncProperty(AREA, `blockSparseAttention values (${backend})`, opArb(cuda, true), async (c) => {
      const s = setup(c, true);
      try {
        if (!s.valid) return; // mismatching combinations are the other property's business
        const dtype = c.dtype as FloatDType;
        await poison(f.ctx, s.qDims.reduce((a, b) => a * b, 1), dtype);
        const r = s.call();
        const out = r instanceof Tensor ? r : r.out;
        const lse = r instanceof Tensor ? undefined : r.lse;
        try {
          const got = await out.toFloat32Array();
          const o = (isPlainObject(s.options) ? s.options : {}) as { scale?: number };
          const l = s.layout.toLists();
          const ref = referenceAttention(
            { q: s.q.exact, k: s.k.exact, v: s.v.exact, batch: c.b, headsQ: c.hq, headsK: c.hk, seqQ: c.n, seqK: c.nk, headDim: c.d, scale: o.scale === undefined ? 1 / Math.sqrt(c.d) : Math.fround(o.scale) },
            keepFromLists(l, { batch: s.layout.batch, heads: s.layout.heads, queryBlocks: s.layout.queryBlocks, keyBlocks: s.layout.keyBlocks, blockSize: s.layout.blockSize, seqK: c.nk }, s.causal),
          );
          const tol = TOL[dtype];
          const err = relError(got, ref.out);
          if (!(err <= tol)) throw new Error(`out: relative error ${err} > ${tol}`);
          if (lse) {
            const gl = await lse.toArray();
            for (let i = 0; i < gl.length; i++) {
              const want = ref.lse[i]!;
              if (want === -Infinity ? gl[i] !== -Infinity : !(Math.abs(gl[i]! - want) <= 2 * tol * Math.max(1, Math.abs(want)))) throw new Error(`lse[${i}] = ${gl[i]}, reference ${want}`);
            }
          }
        } finally {
          out.dispose();
          lse?.dispose();
        }
      } finally {
        s.dispose();
      }
    }, runs(cuda ? 150 : 600));
    await expectMemoryAt(f.ctx, mark, 'blockSparseAttention values');
  });
}

describe('attention properties on cpu', () => {
  attentionProperties('cpu', cpuContext, 1);
});

describeGpu('attention properties on cuda', () => {
  if (cudaUsable() || REQUIRE_GPU) attentionProperties('cuda', gpuContext, 0.25);
});
