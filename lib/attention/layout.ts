/**
 * BlockLayout: which key blocks each query block attends to, in FlexAttention's `from_kv_blocks` form.
 *
 * Per (batch, head, query block) row the layout holds two ascending int32 index lists of key blocks:
 *  - *full* blocks: every key of the block is attended by every query of the block, no token mask (the
 *    kernels skip the mask work for these);
 *  - *masked* blocks: a token mask applies (keys past keyLength never count; in a causal layout a key
 *    counts for query i only when its position is <= i).
 * Rows broadcast over the batch (`batch` 1) and over query heads (`heads` 1). A layout is immutable and
 * validated when it is built, so no malformed list can reach a kernel. Its device copies are made once per
 * context, on first use, and freed by dispose().
 */
import type { Context } from '../context.js';
import { DisposedError, ShapeError } from '../errors.js';
import type { AttentionBinding } from '../native/attention.js';
import { nativeOps } from '../native/load.js';
import { Tensor } from '../tensor.js';
import { checkBoolean, checkInteger, checkOptions, invalidType, invalidValue, isInteger, isPlainObject } from '../validate.js';
import {
  BLOCK_LAYOUT_DEFAULTS,
  type BlockLayoutOptions,
  type DenseCausalLayoutOptions,
  type DenseLayoutOptions,
  LAYOUT_BLOCK_SIZES,
  type LayoutBlockSize,
  type SlidingWindowLayoutOptions,
} from './options.js';

/** Sequence lengths are int32 in the kernels. */
const MAX_LENGTH = 2 ** 31 - 1;

/**
 * Bounds on what one layout may hold, checked before anything is built: 2^21 rows (batch x heads x query
 * blocks: 32 heads of 8M tokens in blocks of 128) and 2^26 list entries per list (dense causal attention
 * over 1M tokens in blocks of 128, which takes the builders ~10 s). Beyond them a builder would spend
 * minutes, or exhaust the JS heap (a fatal, uncatchable crash), building lists no kernel launch could use:
 * a seqLen of 2^31 - 1 asks for ~10^14 entries. Identical rows need not be repeated: layouts broadcast
 * over batch and heads (batch / heads 1).
 */
export const MAX_LAYOUT_ROWS = 2 ** 21;
export const MAX_LAYOUT_ENTRIES = 2 ** 26;

/** RangeError unless `rows` rows of `stride` entries (per list) stay within the bounds above. */
function checkLayoutSize(name: string, g: { batch: number; heads: number; queryBlocks: number }, stride: number): void {
  const rows = g.batch * g.heads * g.queryBlocks;
  if (rows > MAX_LAYOUT_ROWS) {
    throw invalidValue(name, `a layout of at most ${MAX_LAYOUT_ROWS} rows (batch x heads x queryBlocks)`, `${g.batch} x ${g.heads} x ${g.queryBlocks} rows`);
  }
  if (rows * stride > MAX_LAYOUT_ENTRIES) {
    throw invalidValue(name, `a layout of at most ${MAX_LAYOUT_ENTRIES} list entries`, `${rows} rows of up to ${stride} blocks`);
  }
}

/** An int32 index or count array: an Int32Array or an array of integers. */
export type IndexArray = Int32Array | readonly number[];

/** Raw lists for BlockLayout.fromLists; a missing pair (counts and indices) means "no blocks of that kind". */
export interface BlockLayoutListsInput {
  /** Full blocks per row, [batch, heads, queryBlocks]. */
  fullCounts?: IndexArray;
  /** Full key block indices, [batch, heads, queryBlocks, rowCapacity]; entries past a row's count are ignored. */
  fullIndices?: IndexArray;
  /** Masked blocks per row, [batch, heads, queryBlocks]. */
  maskCounts?: IndexArray;
  /** Masked key block indices, [batch, heads, queryBlocks, rowCapacity]; entries past a row's count are ignored. */
  maskIndices?: IndexArray;
}

/** A layout's lists with tight row strides (maxBlocks / maskMaxBlocks); copies, safe to modify. */
export interface BlockLayoutLists {
  fullCounts: Int32Array;
  fullIndices: Int32Array;
  maskCounts: Int32Array;
  maskIndices: Int32Array;
}

/**
 * Advanced (used by the PBS op): the device-resident form the kernels read, on one context: int32 tensors fullCounts /
 * maskCounts [lb, lh, queryBlocks], fullIndices [lb, lh, queryBlocks, maxBlocks], maskIndices
 * [lb, lh, queryBlocks, maskMaxBlocks]. The PBS op produces these directly on the device.
 */
export interface LayoutTensors {
  fullCounts: Tensor<'int32'>;
  fullIndices: Tensor<'int32'>;
  maskCounts: Tensor<'int32'>;
  maskIndices: Tensor<'int32'>;
  blockSize: number;
}

interface Geometry {
  batch: number;
  heads: number;
  queryLength: number;
  keyLength: number;
  blockSize: LayoutBlockSize;
  causal: boolean;
  queryBlocks: number;
  keyBlocks: number;
}

interface Packed {
  fullCnt: Int32Array;
  fullIdx: Int32Array;
  maskCnt: Int32Array;
  maskIdx: Int32Array;
  maxBlocks: number;
  maskMaxBlocks: number;
}

function checkBlockSize(name: string, v: unknown): LayoutBlockSize {
  if (v === undefined) return BLOCK_LAYOUT_DEFAULTS.blockSize;
  if (!isInteger(v)) throw invalidType(name, 'an integer (64 or 128)', v);
  if (!(LAYOUT_BLOCK_SIZES as readonly number[]).includes(v)) throw invalidValue(name, '64 or 128', v);
  return v as LayoutBlockSize;
}

function geometry(
  name: string,
  o: { batch?: unknown; heads?: unknown; queryLength?: unknown; keyLength?: unknown; blockSize?: unknown; causal?: unknown },
): Geometry {
  const batch = o.batch === undefined ? BLOCK_LAYOUT_DEFAULTS.batch : checkInteger(`${name}.batch`, o.batch, 1, MAX_LENGTH);
  const heads = o.heads === undefined ? BLOCK_LAYOUT_DEFAULTS.heads : checkInteger(`${name}.heads`, o.heads, 1, MAX_LENGTH);
  const queryLength = checkInteger(`${name}.queryLength`, o.queryLength, 0, MAX_LENGTH);
  const keyLength = o.keyLength === undefined ? queryLength : checkInteger(`${name}.keyLength`, o.keyLength, 0, MAX_LENGTH);
  const blockSize = checkBlockSize(`${name}.blockSize`, o.blockSize);
  const causal = o.causal === undefined ? BLOCK_LAYOUT_DEFAULTS.causal : checkBoolean(`${name}.causal`, o.causal);
  if (causal && keyLength !== queryLength) {
    throw invalidValue(`${name}.keyLength`, `queryLength (${queryLength}) for a causal layout (causal attention needs equal lengths)`, keyLength);
  }
  const g = {
    batch,
    heads,
    queryLength,
    keyLength,
    blockSize,
    causal,
    queryBlocks: Math.ceil(queryLength / blockSize),
    keyBlocks: Math.ceil(keyLength / blockSize),
  };
  checkLayoutSize(name, g, 0);
  return g;
}

/** Packs per-row lists into tight arrays (row stride = the longest row). */
function packRows(g: Geometry, row: (b: number, h: number, qb: number, full: number[], masked: number[]) => void): Packed {
  const fullRows: number[][] = [];
  const maskRows: number[][] = [];
  for (let b = 0; b < g.batch; b++) {
    for (let h = 0; h < g.heads; h++) {
      for (let qb = 0; qb < g.queryBlocks; qb++) {
        const full: number[] = [];
        const masked: number[] = [];
        row(b, h, qb, full, masked);
        fullRows.push(full);
        maskRows.push(masked);
      }
    }
  }
  const pack = (rows: number[][]) => {
    const stride = rows.reduce((m, r) => Math.max(m, r.length), 0);
    const cnt = new Int32Array(rows.length);
    const idx = new Int32Array(rows.length * stride);
    rows.forEach((r, i) => {
      cnt[i] = r.length;
      idx.set(r, i * stride);
    });
    return { cnt, idx, stride };
  };
  const f = pack(fullRows);
  const m = pack(maskRows);
  return { fullCnt: f.cnt, fullIdx: f.idx, maskCnt: m.cnt, maskIdx: m.idx, maxBlocks: f.stride, maskMaxBlocks: m.stride };
}

/**
 * Validates packed lists; messages name the array (`${prefix}.fullIndices[b=.., h=.., queryBlock=.., pos=..]`).
 * Rules: indices in [0, keyBlocks), strictly ascending, no block in both lists of a row, no padding keys
 * in a full block, and in a causal layout every full block strictly below the diagonal.
 */
function validate(g: Geometry, p: Packed, prefix: string): void {
  const bs = g.blockSize;
  const partialLast = g.keyLength % bs !== 0 ? g.keyBlocks - 1 : -1;
  let row = 0;
  for (let b = 0; b < g.batch; b++) {
    for (let h = 0; h < g.heads; h++) {
      for (let qb = 0; qb < g.queryBlocks; qb++, row++) {
        const at = (list: string, pos: number) => `${prefix}.${list}[b=${b}, h=${h}, queryBlock=${qb}, pos=${pos}]`;
        const lists = [
          { name: 'fullIndices', cnt: p.fullCnt[row]!, idx: p.fullIdx, base: row * p.maxBlocks },
          { name: 'maskIndices', cnt: p.maskCnt[row]!, idx: p.maskIdx, base: row * p.maskMaxBlocks },
        ];
        for (const l of lists) {
          for (let t = 0; t < l.cnt; t++) {
            const v = l.idx[l.base + t]!;
            if (v < 0 || v >= g.keyBlocks) throw invalidValue(at(l.name, t), `a key block index in [0, ${g.keyBlocks})`, v);
            if (t > 0 && v <= l.idx[l.base + t - 1]!) {
              throw invalidValue(at(l.name, t), `an index above the previous one (${l.idx[l.base + t - 1]}): lists are strictly ascending`, v);
            }
          }
        }
        const [full, masked] = lists as [(typeof lists)[0], (typeof lists)[0]];
        for (let t = 0; t < full.cnt; t++) {
          const kb = full.idx[full.base + t]!;
          if (kb === partialLast) {
            throw invalidValue(
              at('fullIndices', t),
              `a key block without padding keys (block ${kb} covers keys ${kb * bs}..${(kb + 1) * bs - 1} but keyLength is ${g.keyLength}: list it in maskIndices)`,
              kb,
            );
          }
          // Causal layouts have equal lengths: every key of block kb precedes every query of block qb iff kb < qb.
          if (g.causal && kb >= qb) {
            throw invalidValue(
              at('fullIndices', t),
              `a key block below the diagonal (< ${qb}) in a causal layout (a full block is attended without the causal mask: list diagonal blocks in maskIndices)`,
              kb,
            );
          }
        }
        // Both lists ascending: one merge walk finds a block listed twice.
        for (let i = 0, j = 0; i < full.cnt && j < masked.cnt; ) {
          const a = full.idx[full.base + i]!;
          const c = masked.idx[masked.base + j]!;
          if (a === c) throw invalidValue(at('maskIndices', j), `a block not also in fullIndices (it is at ${at('fullIndices', i)})`, c);
          if (a < c) i++;
          else j++;
        }
      }
    }
  }
}

/** An int32 array argument as an Int32Array (the argument itself when it is one: readPair copies). */
function toInt32(name: string, v: unknown): Int32Array {
  if (v instanceof Int32Array) return v;
  if (!Array.isArray(v)) throw invalidType(name, 'an Int32Array or an array of integers', v);
  const out = new Int32Array(v.length);
  v.forEach((x, i) => {
    if (!isInteger(x)) throw invalidType(`${name}[${i}]`, 'an integer', x);
    if (x < -(2 ** 31) || x > MAX_LENGTH) throw invalidValue(`${name}[${i}]`, 'an int32 value', x);
    out[i] = x;
  });
  return out;
}

/** Reads one (counts, indices) pair of fromLists input and repacks it with a tight row stride. */
function readPair(
  g: Geometry,
  lists: Record<string, unknown>,
  cntKey: string,
  idxKey: string,
): { cnt: Int32Array; idx: Int32Array; stride: number } {
  const rows = g.batch * g.heads * g.queryBlocks;
  const dims = `[batch, heads, queryBlocks] = [${g.batch}, ${g.heads}, ${g.queryBlocks}]`;
  if (lists[cntKey] === undefined && lists[idxKey] === undefined) return { cnt: new Int32Array(rows), idx: new Int32Array(0), stride: 0 };
  if (lists[cntKey] === undefined) throw invalidType(`lists.${cntKey}`, `an Int32Array (lists.${idxKey} is given)`, undefined);
  if (lists[idxKey] === undefined) throw invalidType(`lists.${idxKey}`, `an Int32Array (lists.${cntKey} is given)`, undefined);
  const cnt = toInt32(`lists.${cntKey}`, lists[cntKey]);
  const idx = toInt32(`lists.${idxKey}`, lists[idxKey]);
  if (cnt.length !== rows) throw new ShapeError(`Expected ${rows} counts (${dims}) for lists.${cntKey} but received ${cnt.length}`);
  if (rows === 0 ? idx.length !== 0 : idx.length % rows !== 0) {
    throw new ShapeError(`Expected a multiple of ${rows} entries (${dims} x row capacity) for lists.${idxKey} but received ${idx.length}`);
  }
  const cap = rows === 0 ? 0 : idx.length / rows;
  let stride = 0;
  let row = 0;
  for (let b = 0; b < g.batch; b++) {
    for (let h = 0; h < g.heads; h++) {
      for (let qb = 0; qb < g.queryBlocks; qb++, row++) {
        const n = cnt[row]!;
        if (n < 0 || n > cap) {
          throw invalidValue(`lists.${cntKey}[b=${b}, h=${h}, queryBlock=${qb}]`, `a count in [0, ${cap}] (the row capacity of lists.${idxKey})`, n);
        }
        stride = Math.max(stride, n);
      }
    }
  }
  const tight = new Int32Array(rows * stride);
  for (let r = 0; r < rows; r++) tight.set(idx.subarray(r * cap, r * cap + cnt[r]!), r * stride);
  return { cnt: Int32Array.from(cnt), idx: tight, stride };
}

export class BlockLayout {
  /** 1 (shared by the batch) or the batch size. */
  readonly batch: number;
  /** 1 (shared by every query head) or Hq. */
  readonly heads: number;
  readonly queryLength: number;
  readonly keyLength: number;
  readonly blockSize: LayoutBlockSize;
  /** Whether the layout was built causal; blockSparseAttention's `causal` must match it. */
  readonly causal: boolean;
  /** ceil(queryLength / blockSize). */
  readonly queryBlocks: number;
  /** ceil(keyLength / blockSize). */
  readonly keyBlocks: number;
  /** Row stride of the full index list (the longest full row). */
  readonly maxBlocks: number;
  /** Row stride of the masked index list (the longest masked row). */
  readonly maskMaxBlocks: number;
  /** @internal */ readonly _p: Packed;
  private readonly _device = new Map<Context, LayoutTensors>();
  private _disposed = false;

  private constructor(g: Geometry, p: Packed, prefix: string) {
    validate(g, p, prefix);
    this.batch = g.batch;
    this.heads = g.heads;
    this.queryLength = g.queryLength;
    this.keyLength = g.keyLength;
    this.blockSize = g.blockSize;
    this.causal = g.causal;
    this.queryBlocks = g.queryBlocks;
    this.keyBlocks = g.keyBlocks;
    this.maxBlocks = p.maxBlocks;
    this.maskMaxBlocks = p.maskMaxBlocks;
    this._p = p;
    // Defence in depth, here rather than at first use so that no op call pays O(layout) on the JS
    // thread: the native host check (check_block_layout_host) of what the kernels rely on.
    nativeOps<AttentionBinding>().attentionCheckLayout(p.fullCnt, p.fullIdx, p.maskCnt, p.maskIdx, this._nativeDims());
  }

  /** Dense causal attention as a layout: blocks below the diagonal full, the diagonal block masked. */
  static denseCausal(options: DenseCausalLayoutOptions): BlockLayout {
    const o = checkOptions<DenseCausalLayoutOptions>('options', options, ['seqLen', 'blockSize']);
    const g = geometry('options', { queryLength: checkInteger('options.seqLen', o.seqLen, 0, MAX_LENGTH), blockSize: o.blockSize });
    checkLayoutSize('options', g, g.queryBlocks);
    const p = packRows(g, (_b, _h, qb, full, masked) => {
      for (let kb = 0; kb < qb; kb++) full.push(kb);
      masked.push(qb);
    });
    return new BlockLayout(g, p, 'layout');
  }

  /** Dense non-causal attention: every key block, full except a partial last block (masked for length). */
  static dense(options: DenseLayoutOptions): BlockLayout {
    const o = checkOptions<DenseLayoutOptions>('options', options, ['queryLength', 'keyLength', 'blockSize']);
    const g = geometry('options', { ...o, causal: false });
    checkLayoutSize('options', g, g.keyBlocks);
    const partial = g.keyLength % g.blockSize !== 0;
    const p = packRows(g, (_b, _h, _qb, full, masked) => {
      for (let kb = 0; kb < g.keyBlocks; kb++) (partial && kb === g.keyBlocks - 1 ? masked : full).push(kb);
    });
    return new BlockLayout(g, p, 'layout');
  }

  /**
   * Causal sliding window with attention sinks, block-granular: query block qb keeps key blocks
   * [0, sinkBlocks) and [qb - windowBlocks + 1, qb]; the diagonal block is masked, the others full.
   */
  static slidingWindow(options: SlidingWindowLayoutOptions): BlockLayout {
    const o = checkOptions<SlidingWindowLayoutOptions>('options', options, ['seqLen', 'blockSize', 'windowBlocks', 'sinkBlocks']);
    const g = geometry('options', { queryLength: checkInteger('options.seqLen', o.seqLen, 0, MAX_LENGTH), blockSize: o.blockSize });
    const window = checkInteger('options.windowBlocks', o.windowBlocks, 1, MAX_LENGTH);
    const sinks = o.sinkBlocks === undefined ? BLOCK_LAYOUT_DEFAULTS.sinkBlocks : checkInteger('options.sinkBlocks', o.sinkBlocks, 0, MAX_LENGTH);
    checkLayoutSize('options', g, Math.min(g.queryBlocks, window + sinks));
    const p = packRows(g, (_b, _h, qb, full, masked) => {
      const start = Math.max(0, qb - window + 1);
      for (let kb = 0; kb < Math.min(sinks, start); kb++) full.push(kb);
      for (let kb = start; kb < qb; kb++) full.push(kb);
      masked.push(qb);
    });
    return new BlockLayout(g, p, 'layout');
  }

  /**
   * From a block mask laid out [batch, heads, queryBlocks, keyBlocks] (nonzero = attend). A kept block is
   * *full* only when every key in it is kept for every query in the block: with `causal`, blocks above the
   * diagonal are dropped and the diagonal block is masked; a partial last key block is always masked.
   */
  static fromBlockMask(mask: Uint8Array, options: BlockLayoutOptions): BlockLayout {
    const o = checkOptions<BlockLayoutOptions>('options', options, ['batch', 'heads', 'queryLength', 'keyLength', 'blockSize', 'causal']);
    const g = geometry('options', o);
    if (!(mask instanceof Uint8Array)) throw invalidType('mask', 'a Uint8Array', mask);
    const n = g.batch * g.heads * g.queryBlocks * g.keyBlocks;
    if (mask.length !== n) {
      throw new ShapeError(
        `Expected ${n} entries ([batch, heads, queryBlocks, keyBlocks] = [${g.batch}, ${g.heads}, ${g.queryBlocks}, ${g.keyBlocks}]) for mask but received ${mask.length}`,
      );
    }
    const partialLast = g.keyLength % g.blockSize !== 0 ? g.keyBlocks - 1 : -1;
    let row = 0;
    const p = packRows(g, (_b, _h, qb, full, masked) => {
      const base = row++ * g.keyBlocks;
      const end = g.causal ? Math.min(qb + 1, g.keyBlocks) : g.keyBlocks;
      for (let kb = 0; kb < end; kb++) {
        if (mask[base + kb] === 0) continue;
        const isMasked = kb === partialLast || (g.causal && kb >= qb);
        (isMasked ? masked : full).push(kb);
      }
    });
    return new BlockLayout(g, p, 'layout');
  }

  /**
   * From raw lists ([batch, heads, queryBlocks] counts and [batch, heads, queryBlocks, capacity] indices,
   * FlexAttention's kv_num_blocks / kv_indices (masked) and full_kv_num_blocks / full_kv_indices). The
   * arrays are copied; every value is validated (RangeError naming the position).
   */
  static fromLists(lists: BlockLayoutListsInput, options: BlockLayoutOptions): BlockLayout {
    if (!isPlainObject(lists)) throw invalidType('lists', 'an object of count and index arrays', lists);
    const l = checkOptions<BlockLayoutListsInput>('lists', lists, ['fullCounts', 'fullIndices', 'maskCounts', 'maskIndices']);
    const o = checkOptions<BlockLayoutOptions>('options', options, ['batch', 'heads', 'queryLength', 'keyLength', 'blockSize', 'causal']);
    const g = geometry('options', o);
    const f = readPair(g, l, 'fullCounts', 'fullIndices');
    const m = readPair(g, l, 'maskCounts', 'maskIndices');
    const p: Packed = { fullCnt: f.cnt, fullIdx: f.idx, maskCnt: m.cnt, maskIdx: m.idx, maxBlocks: f.stride, maskMaxBlocks: m.stride };
    return new BlockLayout(g, p, 'lists');
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Kept (query block, key block) pairs over the layout's own rows (broadcast rows counted once). */
  keptBlocks(): number {
    let n = 0;
    for (let i = 0; i < this._p.fullCnt.length; i++) n += this._p.fullCnt[i]! + this._p.maskCnt[i]!;
    return n;
  }

  /** Kept blocks / the blocks dense attention would compute (the causal triangle for a causal layout). */
  density(): number {
    const rows = this.batch * this.heads;
    let possible = 0;
    for (let qb = 0; qb < this.queryBlocks; qb++) possible += this.causal ? Math.min(qb + 1, this.keyBlocks) : this.keyBlocks;
    possible *= rows;
    return possible === 0 ? 0 : this.keptBlocks() / possible;
  }

  /** The kept blocks as a 0/1 mask [batch, heads, queryBlocks, keyBlocks] (fromBlockMask's input form). */
  toBlockMask(): Uint8Array {
    const { fullCnt, fullIdx, maskCnt, maskIdx, maxBlocks, maskMaxBlocks } = this._p;
    // A long sparse layout can have a block grid far larger than its lists: refuse instead of failing to allocate.
    if (fullCnt.length * this.keyBlocks > MAX_LAYOUT_ENTRIES) {
      throw new RangeError(`Expected a layout of at most ${MAX_LAYOUT_ENTRIES} blocks in its grid for toBlockMask() but this one has ${fullCnt.length} x ${this.keyBlocks} (use toLists())`);
    }
    const out = new Uint8Array(fullCnt.length * this.keyBlocks);
    for (let r = 0; r < fullCnt.length; r++) {
      for (let t = 0; t < fullCnt[r]!; t++) out[r * this.keyBlocks + fullIdx[r * maxBlocks + t]!] = 1;
      for (let t = 0; t < maskCnt[r]!; t++) out[r * this.keyBlocks + maskIdx[r * maskMaxBlocks + t]!] = 1;
    }
    return out;
  }

  /** Copies of the lists (row strides maxBlocks / maskMaxBlocks; entries past a row's count are 0). */
  toLists(): BlockLayoutLists {
    const p = this._p;
    return { fullCounts: p.fullCnt.slice(), fullIndices: p.fullIdx.slice(), maskCounts: p.maskCnt.slice(), maskIndices: p.maskIdx.slice() };
  }

  /**
   * @internal The device copies on `ctx`, uploaded on its default stream on first use (ops on other streams
   * are ordered after the upload by the runtime).
   */
  _tensors(ctx: Context): LayoutTensors {
    if (this._disposed) throw new DisposedError('layout was disposed');
    for (const [c, t] of this._device) {
      if (c.isDisposed) this._device.delete(c);
      else if (c === ctx && ![t.fullCounts, t.fullIndices, t.maskCounts, t.maskIndices].every((x) => !x.isDisposed && !x._error)) {
        // A failed upload (out of memory) or a tensor disposed behind our back: upload again.
        disposeLayoutTensors(t);
        this._device.delete(c);
      }
    }
    let t = this._device.get(ctx);
    if (t === undefined) {
      const p = this._p;
      const lb = this.batch;
      const lh = this.heads;
      const qB = this.queryBlocks;
      const up = (data: Int32Array, dims: number[]) => Tensor.from(data, dims, { dtype: 'int32', context: ctx }) as Tensor<'int32'>;
      t = {
        fullCounts: up(p.fullCnt, [lb, lh, qB]),
        fullIndices: up(p.fullIdx, [lb, lh, qB, p.maxBlocks]),
        maskCounts: up(p.maskCnt, [lb, lh, qB]),
        maskIndices: up(p.maskIdx, [lb, lh, qB, p.maskMaxBlocks]),
        blockSize: this.blockSize,
      };
      this._device.set(ctx, t);
    }
    return t;
  }

  /** @internal */
  _nativeDims() {
    return nativeLayoutDims(this);
  }

  /** Frees the device copies (after any queued op that uses them); the layout can no longer be used by an op. */
  dispose(): void {
    for (const t of this._device.values()) disposeLayoutTensors(t);
    this._device.clear();
    this._disposed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return (
      `BlockLayout(${this.causal ? 'causal' : 'non-causal'}, [${this.batch}, ${this.heads}, ${this.queryBlocks} x ${this.keyBlocks}] ` +
      `blocks of ${this.blockSize}, ${this.queryLength} x ${this.keyLength} tokens, density ${this.density().toFixed(3)})`
    );
  }
}

/** @internal The layout geometry as the native ops take it (BlockLayout and PBS's device layouts). */
export function nativeLayoutDims(l: {
  readonly batch: number;
  readonly heads: number;
  readonly queryBlocks: number;
  readonly keyBlocks: number;
  readonly maxBlocks: number;
  readonly maskMaxBlocks: number;
  readonly blockSize: number;
}) {
  return {
    layoutBatch: l.batch,
    layoutHeads: l.heads,
    qBlocks: l.queryBlocks,
    kBlocks: l.keyBlocks,
    maxBlocks: l.maxBlocks,
    maskMaxBlocks: l.maskMaxBlocks,
    blockSize: l.blockSize,
  };
}

/** @internal */
export function disposeLayoutTensors(t: LayoutTensors): void {
  t.fullCounts.dispose();
  t.fullIndices.dispose();
  t.maskCounts.dispose();
  t.maskIndices.dispose();
}

