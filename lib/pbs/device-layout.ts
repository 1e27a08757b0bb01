/**
 * A BlockLayout whose index lists live on one context's device, as pbsSelectBlocks and pbsAttention
 * produce them: no host round trip between selecting blocks and running the kernel.
 *
 * It is a BlockLayout (instanceof holds, and the geometry fields are the same), with two differences
 * forced by where the lists are:
 *  - the host views (keptBlocks(), density(), toBlockMask(), toLists()) throw: `await layout.toHost()`
 *    downloads the lists into an ordinary BlockLayout first;
 *  - a layout built on permuted keys (the usual PBS case) indexes key *slots* of its permutation, so it is
 *    only meaningful together with that permutation: blockSparseAttention refuses it (it would attend to
 *    the wrong keys); pbsAttention takes it from a custom selector. A layout built on the identity
 *    permutation (permute: false) is an ordinary causal layout and works with blockSparseAttention too.
 *
 * BlockLayout's constructor is private to lib/attention (it validates host lists), so this class does not
 * call it: it implements the same surface and is linked into BlockLayout's prototype chain.
 */
import { BlockLayout, disposeLayoutTensors, nativeLayoutDims, type LayoutTensors } from '../attention/layout.js';
import type { Context } from '../context.js';
import { DisposedError } from '../errors.js';
import type { Tensor } from '../tensor.js';

/** What pbsSelectBlocks returns as its layout: a BlockLayout plus the device-side extras. */
export interface DeviceBlockLayout extends BlockLayout {
  /** The context whose device holds the lists. */
  readonly context: Context;
  /** Whether the block indices address permuted key slots (then `permutation` is the permutation). */
  readonly permuted: boolean;
  /** Downloads the lists into an ordinary (host) BlockLayout with the same indices. */
  toHost(): Promise<BlockLayout>;
}

export interface DeviceLayoutInit {
  context: Context;
  batch: number;
  heads: number;
  seqLen: number;
  blockSize: 64 | 128;
  maskMaxBlocks: number;
  tensors: LayoutTensors;
  /** The permutation the indices refer to; undefined for the identity. */
  keyPermutation: Tensor<'int32'> | undefined;
}

const HOST_ONLY = (what: string) =>
  new TypeError(`${what} needs the lists on the host, but this layout lives on the device (made by pbsSelectBlocks / pbsAttention): use (await layout.toHost()).${what}`);

class PbsDeviceLayout {
  readonly batch: number;
  readonly heads: number;
  readonly queryLength: number;
  readonly keyLength: number;
  readonly blockSize: 64 | 128;
  readonly causal = true;
  readonly queryBlocks: number;
  readonly keyBlocks: number;
  readonly maxBlocks: number;
  readonly maskMaxBlocks: number;
  readonly context: Context;
  readonly permuted: boolean;
  /** @internal */ readonly _lt: LayoutTensors;
  /** @internal the permutation the indices address (undefined: identity) */ readonly _keyPerm: Tensor<'int32'> | undefined;
  private _disposed = false;

  constructor(i: DeviceLayoutInit) {
    this.batch = i.batch;
    this.heads = i.heads;
    this.queryLength = this.keyLength = i.seqLen;
    this.blockSize = i.blockSize;
    this.queryBlocks = this.keyBlocks = Math.ceil(i.seqLen / i.blockSize);
    this.maxBlocks = this.queryBlocks;
    this.maskMaxBlocks = i.maskMaxBlocks;
    this.context = i.context;
    this.permuted = i.keyPermutation !== undefined;
    this._lt = i.tensors;
    this._keyPerm = i.keyPermutation;
  }

  get isDisposed(): boolean {
    return this._disposed || [this._lt.fullCounts, this._lt.fullIndices, this._lt.maskCounts, this._lt.maskIndices].some((t) => t.isDisposed);
  }

  keptBlocks(): number {
    throw HOST_ONLY('keptBlocks()');
  }

  density(): number {
    throw HOST_ONLY('density()');
  }

  toBlockMask(): Uint8Array {
    throw HOST_ONLY('toBlockMask()');
  }

  toLists(): never {
    throw HOST_ONLY('toLists()');
  }

  async toHost(): Promise<BlockLayout> {
    this._live();
    const lt = this._lt;
    const [fullCounts, fullIndices, maskCounts, maskIndices] = await Promise.all([
      lt.fullCounts.toArray(),
      lt.fullIndices.toArray(),
      lt.maskCounts.toArray(),
      lt.maskIndices.toArray(),
    ]);
    return BlockLayout.fromLists(
      { fullCounts, fullIndices, maskCounts, maskIndices },
      { batch: this.batch, heads: this.heads, queryLength: this.queryLength, blockSize: this.blockSize, causal: true },
    );
  }

  /** @internal blockSparseAttention's accessor: only identity-order layouts, only on their own context. */
  _tensors(ctx: Context): LayoutTensors {
    this._live();
    if (ctx !== this.context) {
      throw new TypeError(`layout lives on another context (${this.context.backend}) than the tensors (${ctx.backend})`);
    }
    if (this.permuted) {
      throw new TypeError(
        'layout indexes the permuted keys of a PBS permutation, so blockSparseAttention would attend to the wrong keys: ' +
          'return it from a pbsAttention selector instead, or build it with permute: false (identity order)',
      );
    }
    return this._lt;
  }

  /** @internal */
  _live(): void {
    if (this.isDisposed) throw new DisposedError('layout was disposed');
  }

  /** @internal */
  _nativeDims() {
    return nativeLayoutDims(this);
  }

  /** Frees the device lists (after any queued op that uses them). */
  dispose(): void {
    disposeLayoutTensors(this._lt);
    this._disposed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    const order = this.permuted ? 'permuted keys' : 'natural key order';
    return `BlockLayout(causal, device, [${this.batch}, ${this.heads}, ${this.queryBlocks} x ${this.keyBlocks}] blocks of ${this.blockSize}, ${this.queryLength} x ${this.keyLength} tokens, ${order})`;
  }
}

// instanceof BlockLayout, and BlockLayout's prototype methods are reachable only where this class does not
// define its own (it defines every one that reads host lists).
Object.setPrototypeOf(PbsDeviceLayout.prototype, BlockLayout.prototype);

export function makeDeviceLayout(i: DeviceLayoutInit): DeviceBlockLayout {
  return new PbsDeviceLayout(i) as unknown as DeviceBlockLayout;
}

/** The device layout behind a BlockLayout, if it is one. */
export function asDeviceLayout(l: BlockLayout): (DeviceBlockLayout & { _lt: LayoutTensors; _keyPerm: Tensor<'int32'> | undefined; _live(): void }) | undefined {
  return l instanceof PbsDeviceLayout ? (l as never) : undefined;
}

/** Whether a BlockLayout's lists live on a device (made by pbsSelectBlocks or pbsAttention). */
export function isDeviceLayout(l: unknown): l is DeviceBlockLayout {
  return l instanceof PbsDeviceLayout;
}
