/**
 * Block-sparse weight SpMM (contract: src/ops/spmm.h), the nn.Linear convention:
 *
 *   Y[..., M] = act(X[..., K] . W^T + b)        W [M, K] a BlockSparseMatrix, b [M]
 *
 * X's leading dims are flattened to N rows (a [K] vector is N = 1). Accumulation is float32 for every
 * dtype, the output is rounded once to the dtype, and the activation is fused in the epilogue.
 * Validation is synchronous and complete (TypeError / RangeError / ShapeError naming the argument,
 * DisposedError for disposed inputs); the work is enqueued and the output returned at once.
 */
import { type DType, DTYPE_ID } from '../dtype.js';
import { DisposedError, ShapeError } from '../errors.js';
import { allocOutput, checkTensor, commonContext, opStream, runOp, storages } from '../internal/op.js';
import type { SpmmBinding } from '../native/spmm.js';
import { nativeOps } from '../native/load.js';
import type { Tensor } from '../tensor.js';
import { checkOneOf, checkOptions, invalidType } from '../validate.js';
import { BlockSparseMatrix } from './matrix.js';
import { SPMM_ACTIVATIONS, SPMM_BACKENDS, SPMM_DEFAULTS, type SpmmOptions } from './options.js';

export { BlockSparseMatrix } from './matrix.js';
export type { BlockCsrArrays, BlockValues, IndexArray } from './matrix.js';
export * from './options.js';

const OPTION_KEYS = ['bias', 'activation', 'out', 'backend', 'stream'] as const;
const ACTIVATION_ID = { none: 0, relu: 1, gelu: 2, silu: 3 } as const;
const INT32_MAX = 2 ** 31 - 1;

/** Whether two tensors share memory (one storage, possibly through reshape views). */
function sharesMemory(a: Tensor, b: Tensor): boolean {
  return a._ref !== null && a._ref === b._ref;
}

/**
 * Y = act(X . W^T + b) with a block-sparse W.
 *
 * @param x [..., K] (K = w.shape[1]) in w's dtype, on w's context. Any number of leading dims, flattened
 *   to N rows (N < 2^31).
 * @param w the weight [M, K].
 * @returns [...x.dims[:-1], M] in w's dtype (options.out when given).
 */
export function spmm<D extends DType>(x: Tensor<D>, w: BlockSparseMatrix, options?: SpmmOptions): Tensor<D> {
  const o = checkOptions<SpmmOptions>('options', options, OPTION_KEYS);
  if (!(w instanceof BlockSparseMatrix)) throw invalidType('w', 'a BlockSparseMatrix', w);
  if (w.isDisposed) throw new DisposedError('w was disposed');
  const xt = checkTensor('x', x);
  const [m, k] = w.shape;
  if (xt.rank < 1 || xt.dims[xt.rank - 1] !== k) {
    throw new ShapeError(`Expected x to have dims [..., ${k}] (K = w.shape[1]) but they are [${xt.dims.join(', ')}]`);
  }
  if (xt.dtype !== w.dtype) {
    throw new TypeError(`Expected x to have w's dtype (${w.dtype}) but it is ${xt.dtype} (cast with x.cast("${w.dtype}"))`);
  }
  const lead = xt.dims.slice(0, -1);
  const n = lead.reduce((a, b) => a * b, 1);
  if (n > INT32_MAX) throw new ShapeError(`Expected x to have fewer than 2^31 rows but its leading dims [${lead.join(', ')}] hold ${n}`);
  const outDims = [...lead, m];

  const bias = o.bias === undefined ? undefined : checkTensor('options.bias', o.bias, { dims: [m] });
  if (bias && bias.dtype !== w.dtype) throw new TypeError(`Expected options.bias to have w's dtype (${w.dtype}) but it is ${bias.dtype}`);
  const out = o.out === undefined ? undefined : checkTensor('options.out', o.out, { dims: outDims });
  if (out && out.dtype !== w.dtype) throw new TypeError(`Expected options.out to have w's dtype (${w.dtype}) but it is ${out.dtype}`);
  const ctx = commonContext({ x: xt, 'options.bias': bias, 'options.out': out });
  if (w.context !== ctx) throw new TypeError(`w is on another context (${w.context.backend}) than x (${ctx.backend})`);
  const activation = o.activation === undefined ? SPMM_DEFAULTS.activation : checkOneOf('options.activation', o.activation, SPMM_ACTIVATIONS);
  const backendOpt = o.backend === undefined ? SPMM_DEFAULTS.backend : checkOneOf('options.backend', o.backend, SPMM_BACKENDS);
  const stream = opStream(ctx, o.stream);
  if (out && (sharesMemory(out, xt) || (bias && sharesMemory(out, bias)))) {
    // The kernels read X (and the bias) tile by tile while writing Y: in place would read overwritten rows.
    throw new RangeError(`Expected options.out to share no memory with ${sharesMemory(out, xt) ? 'x' : 'options.bias'}`);
  }

  const backend = backendOpt === 'auto' ? w.plan(n).backend : backendOpt;
  const t = w._tensors();
  const y = (out ?? allocOutput(ctx, stream, outDims, w.dtype)) as Tensor<D>;
  const common = { dtype: DTYPE_ID[w.dtype], activation: ACTIVATION_ID[activation], n };
  if (backend === 'dense') {
    const wd = w._denseWeight(stream);
    runOp([xt, bias, wd], [y], stream, (ns) => {
      const s = storages({ x: xt, w: wd, y, bias });
      nativeOps<SpmmBinding>().spmmDenseForward(ns, s as unknown as Parameters<SpmmBinding['spmmDenseForward']>[1], { ...common, m, k });
    });
  } else {
    const [bm, bk] = w.blockShape;
    runOp([xt, bias, t.rowPtr, t.colIdx, t.values, t.rowOrder], [y], stream, (ns) => {
      const s = storages({ x: xt, y, bias, rowPtr: t.rowPtr, colIdx: t.colIdx, values: t.values, rowOrder: t.rowOrder });
      nativeOps<SpmmBinding>().spmmForward(ns, s as unknown as Parameters<SpmmBinding['spmmForward']>[1], {
        ...common,
        rows: m,
        cols: k,
        bm,
        bk,
        nnzb: w.nnzBlocks,
      });
    });
  }
  return y;
}
