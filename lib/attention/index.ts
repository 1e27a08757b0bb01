/**
 * Block-sparse FlashAttention forward (contract: src/ops/attention.h).
 *
 *   out[b, h, i] = softmax_j(scale * q[b, h, i] . k[b, h / G, j]) @ v[b, h / G, j]   over the kept keys j
 *
 * with G = Hq / Hk (GQA reads K/V head h / G; nothing is replicated) and the kept keys given by a
 * BlockLayout. Validation is synchronous and complete (TypeError / RangeError / ShapeError naming the
 * argument, DisposedError for disposed inputs); the work is enqueued and the outputs returned at once.
 */
import type { Context } from '../context.js';
import { type DType, DTYPE_ID, type FloatDType } from '../dtype.js';
import { DisposedError, ShapeError } from '../errors.js';
import { allocOutput, checkTensor, commonContext, opStream, runOp, storages } from '../internal/op.js';
import type { AttentionBinding, NativeAttentionParams } from '../native/attention.js';
import { nativeOps } from '../native/load.js';
import type { Stream } from '../stream.js';
import type { Tensor } from '../tensor.js';
import { checkBoolean, checkNumber, checkOptions, invalidType, invalidValue } from '../validate.js';
import { BlockLayout, type LayoutTensors } from './layout.js';
import { ATTENTION_DEFAULTS, type AttentionOptions, type InternalAttentionOptions } from './options.js';

export { BlockLayout } from './layout.js';
export type { BlockLayoutLists, BlockLayoutListsInput, IndexArray, LayoutTensors } from './layout.js';
export * from './options.js';

/** What blockSparseAttention returns with `returnLse: true`. */
export interface AttentionWithLse<D extends DType = FloatDType> {
  /** [batch, Hq, N, D], q's dtype. */
  out: Tensor<D>;
  /** float32 [batch, Hq, N]: natural-log log-sum-exp of each row's scaled scores (-Infinity for a row with no key). */
  lse: Tensor<'float32'>;
}

const OPTION_KEYS = ['causal', 'scale', 'returnLse', 'stream'] as const;
const CUDA_DTYPES: readonly FloatDType[] = ['float16', 'bfloat16'];
const CPU_DTYPES: readonly FloatDType[] = ['float32', 'float16', 'bfloat16'];
const CUDA_HEAD_DIMS = [64, 128, 256];
const CPU_MAX_HEAD_DIM = 1024; // bounds the CPU kernel's per-thread tiles (src/ops/attention.cc)
const CUDA_MAX_Q_BLOCKS = 65535;

/** q, k, v and options checked against each other and the backend; what both entry points share. */
interface Problem {
  ctx: Context;
  stream: Stream;
  batch: number;
  headsQ: number;
  headsK: number;
  seqQ: number;
  seqK: number;
  headDim: number;
  dtype: FloatDType;
  scale: number;
  causal: boolean;
  returnLse: boolean;
}

/** `extra`: further tensors of the call (already checked) that must share q's context. */
function checkProblem(
  q: unknown,
  k: unknown,
  v: unknown,
  o: Partial<InternalAttentionOptions>,
  extra: Record<string, Tensor | undefined>,
): Problem {
  const qt = checkTensor('q', q, { rank: 4 });
  const kt = checkTensor('k', k, { rank: 4 });
  const vt = checkTensor('v', v, { rank: 4 });
  const ctx = commonContext({ q: qt, k: kt, v: vt, ...extra });
  const cuda = ctx.backend === 'cuda';
  const dtypes = cuda ? CUDA_DTYPES : CPU_DTYPES;
  if (!(dtypes as readonly string[]).includes(qt.dtype)) {
    const where = cuda ? ' on a CUDA context (cast with q.cast("bfloat16"))' : '';
    throw new TypeError(`Expected q to have dtype ${dtypes.join(' | ')}${where} but it is ${qt.dtype}`);
  }
  if (kt.dtype !== qt.dtype) throw new TypeError(`Expected k to have q's dtype (${qt.dtype}) but it is ${kt.dtype}`);
  if (vt.dtype !== qt.dtype) throw new TypeError(`Expected v to have q's dtype (${qt.dtype}) but it is ${vt.dtype}`);
  const [batch, headsQ, seqQ, headDim] = qt.dims as [number, number, number, number];
  const [, headsK, seqK] = kt.dims as [number, number, number, number];
  if (cuda ? !CUDA_HEAD_DIMS.includes(headDim) : headDim < 1 || headDim > CPU_MAX_HEAD_DIM) {
    const want = cuda ? '64, 128 or 256 on CUDA' : `between 1 and ${CPU_MAX_HEAD_DIM} on the CPU`;
    throw new ShapeError(`Expected q's head dimension (dims[3]) to be ${want} but q's dims are [${qt.dims.join(', ')}]`);
  }
  checkTensor('k', kt, { dims: [batch, -1, -1, headDim] });
  checkTensor('v', vt, { dims: kt.dims });
  if (headsQ > 0 && (headsK === 0 || headsQ % headsK !== 0)) {
    throw new ShapeError(`Expected q's heads (${headsQ}) to be a multiple of k's heads (${headsK}) (grouped-query attention)`);
  }
  const causal = o.causal === undefined ? ATTENTION_DEFAULTS.causal : checkBoolean('options.causal', o.causal);
  if (causal && seqQ !== seqK) {
    throw new ShapeError(`Expected equal query and key lengths for causal attention but q has ${seqQ} rows and k has ${seqK}`);
  }
  let scale = 1 / Math.sqrt(headDim);
  if (o.scale !== undefined) {
    scale = checkNumber('options.scale', o.scale);
    // The kernels take a float32 scale; it must stay finite and > 0 there too.
    const f = Math.fround(scale);
    if (!(f > 0 && Number.isFinite(f))) throw invalidValue('options.scale', 'a number > 0 representable as a finite float32', o.scale);
  }
  const returnLse = o.returnLse === undefined ? ATTENTION_DEFAULTS.returnLse : checkBoolean('options.returnLse', o.returnLse);
  const stream = opStream(ctx, o.stream);
  return { ctx, stream, batch, headsQ, headsK, seqQ, seqK, headDim, dtype: qt.dtype as FloatDType, scale, causal, returnLse };
}

/** Allocates the outputs and enqueues the kernel. */
function run(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  pr: Problem,
  lt: LayoutTensors,
  keyPerm: Tensor | undefined,
): Tensor | AttentionWithLse {
  const [lb, lh, qBlocks, maxBlocks] = lt.fullIndices.dims as [number, number, number, number];
  const params: NativeAttentionParams = {
    dtype: DTYPE_ID[pr.dtype],
    batch: pr.batch,
    headsQ: pr.headsQ,
    headsK: pr.headsK,
    seqQ: pr.seqQ,
    seqK: pr.seqK,
    headDim: pr.headDim,
    scale: pr.scale,
    causal: pr.causal,
    layoutBatch: lb,
    layoutHeads: lh,
    qBlocks,
    kBlocks: Math.ceil(pr.seqK / lt.blockSize),
    maxBlocks,
    maskMaxBlocks: lt.maskIndices.dims[3]!,
    blockSize: lt.blockSize,
    ...(keyPerm ? { keyPermHeads: keyPerm.dims[1]! } : {}),
  };
  const out = allocOutput(pr.ctx, pr.stream, q.dims, pr.dtype);
  const lse = pr.returnLse ? allocOutput(pr.ctx, pr.stream, [pr.batch, pr.headsQ, pr.seqQ], 'float32') : undefined;
  const layoutInputs = { fullCnt: lt.fullCounts, fullIdx: lt.fullIndices, maskCnt: lt.maskCounts, maskIdx: lt.maskIndices };
  const inputs = { q, k, v, ...layoutInputs, keyPerm };
  runOp(Object.values(inputs), lse ? [out, lse] : [out], pr.stream, (ns) => {
    const tensors = storages({ ...inputs, out, lse });
    nativeOps<AttentionBinding>().attentionForward(ns, tensors as unknown as Parameters<AttentionBinding['attentionForward']>[1], params);
  });
  return lse ? { out, lse } : out;
}

/**
 * Block-sparse attention over the blocks a BlockLayout keeps.
 *
 * @param q [batch, Hq, N, D]; CUDA: float16 | bfloat16 with D 64, 128 (or 256 where the GPU's shared
 *   memory allows); CPU: float32 | float16 | bfloat16 (computed in float32), D up to 1024.
 * @param k [batch, Hk, Nk, D], q's dtype; Hq a multiple of Hk (GQA without replicating K/V).
 * @param v like k.
 * @param layout built for (N, Nk) with batch 1 or `batch` and heads 1 or Hq; any N (a partial last
 *   block is masked for length).
 * @returns out [batch, Hq, N, D] in q's dtype, or `{ out, lse }` with `returnLse`.
 */
export function blockSparseAttention<D extends DType>(
  q: Tensor<D>,
  k: Tensor<D>,
  v: Tensor<D>,
  layout: BlockLayout,
  options?: AttentionOptions & { returnLse?: false },
): Tensor<D>;
export function blockSparseAttention<D extends DType>(
  q: Tensor<D>,
  k: Tensor<D>,
  v: Tensor<D>,
  layout: BlockLayout,
  options: AttentionOptions & { returnLse: true },
): AttentionWithLse<D>;
export function blockSparseAttention<D extends DType>(
  q: Tensor<D>,
  k: Tensor<D>,
  v: Tensor<D>,
  layout: BlockLayout,
  options?: AttentionOptions,
): Tensor<D> | AttentionWithLse<D>;
export function blockSparseAttention(q: Tensor, k: Tensor, v: Tensor, layout: BlockLayout, options?: AttentionOptions): Tensor | AttentionWithLse {
  const o = checkOptions<AttentionOptions>('options', options, OPTION_KEYS);
  if (!(layout instanceof BlockLayout)) throw invalidType('layout', 'a BlockLayout', layout);
  if (layout.isDisposed) throw new DisposedError('layout was disposed');
  const pr = checkProblem(q, k, v, o, {});
  if (layout.queryLength !== pr.seqQ || layout.keyLength !== pr.seqK) {
    throw new ShapeError(
      `Expected a layout for ${pr.seqQ} queries and ${pr.seqK} keys (q and k dims[2]) but layout is for ${layout.queryLength} and ${layout.keyLength}`,
    );
  }
  checkLayoutBroadcast(layout.batch, layout.heads, pr);
  if (layout.causal !== pr.causal) {
    const built = layout.causal ? 'causal' : 'non-causal';
    throw new RangeError(
      `Expected options.causal to be ${layout.causal} (the layout was built ${built}; pass { causal: ${layout.causal} } or build a matching layout) but it is ${pr.causal}`,
    );
  }
  // One path to the kernel: the PBS op's entry point, with this layout's device copies.
  return blockSparseAttentionWithLayoutTensors(q, k, v, layout._tensors(pr.ctx), o);
}

function checkLayoutBroadcast(lb: number, lh: number, pr: Problem): void {
  if (lb !== 1 && lb !== pr.batch) throw new ShapeError(`Expected layout batch 1 or ${pr.batch} (q dims[0]) but it is ${lb}`);
  if (lh !== 1 && lh !== pr.headsQ) throw new ShapeError(`Expected layout heads 1 or ${pr.headsQ} (q dims[1]) but it is ${lh}`);
}

/**
 * @internal The entry point of the PBS op (and of blockSparseAttention's GPU tests with a permutation):
 * the layout as device-resident int32 tensors (LayoutTensors), optionally a key permutation. Shapes,
 * dtypes and contexts are validated; index *values* are trusted (produced by our own kernels, clamped by
 * the attention kernels).
 */
export function blockSparseAttentionWithLayoutTensors(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  layoutTensors: LayoutTensors,
  options?: InternalAttentionOptions,
): Tensor | AttentionWithLse {
  const o = checkOptions<InternalAttentionOptions>('options', options, [...OPTION_KEYS, 'keyPermutation']);
  if (typeof layoutTensors !== 'object' || layoutTensors === null) throw invalidType('layoutTensors', 'a LayoutTensors object', layoutTensors);
  const lt = layoutTensors;
  const int32 = { dtypes: ['int32'] } as const;
  const fc = checkTensor('layoutTensors.fullCounts', lt.fullCounts, { ...int32, rank: 3 });
  const fi = checkTensor('layoutTensors.fullIndices', lt.fullIndices, { ...int32, rank: 4 });
  const mc = checkTensor('layoutTensors.maskCounts', lt.maskCounts, { ...int32, rank: 3 });
  const mi = checkTensor('layoutTensors.maskIndices', lt.maskIndices, { ...int32, rank: 4 });
  const perm = o.keyPermutation === undefined ? undefined : checkTensor('options.keyPermutation', o.keyPermutation, { ...int32, rank: 3 });
  const pr = checkProblem(q, k, v, o, {
    'layoutTensors.fullCounts': fc,
    'layoutTensors.fullIndices': fi,
    'layoutTensors.maskCounts': mc,
    'layoutTensors.maskIndices': mi,
    'options.keyPermutation': perm,
  });
  // The kernels' tiles divide 64 and 128 (the CPU takes any size, but the API builds only these).
  if (lt.blockSize !== 64 && lt.blockSize !== 128) throw invalidValue('layoutTensors.blockSize', '64 or 128', lt.blockSize);
  const qBlocks = Math.ceil(pr.seqQ / lt.blockSize);
  const kBlocks = Math.ceil(pr.seqK / lt.blockSize);
  // The CUDA grid has one row of CTAs per query block (gridDim.y <= 65535, cuda/attention launchers).
  if (pr.ctx.backend === 'cuda' && qBlocks > CUDA_MAX_Q_BLOCKS && pr.batch * pr.headsQ > 0) {
    throw new ShapeError(
      `Expected at most ${CUDA_MAX_Q_BLOCKS * lt.blockSize} queries (${CUDA_MAX_Q_BLOCKS} blocks of ${lt.blockSize}) on CUDA but q has ${pr.seqQ}`,
    );
  }
  const [lb, lh] = fc.dims as [number, number, number];
  checkTensor('layoutTensors.fullCounts', fc, { dims: [lb, lh, qBlocks] });
  checkTensor('layoutTensors.maskCounts', mc, { dims: [lb, lh, qBlocks] });
  checkTensor('layoutTensors.fullIndices', fi, { dims: [lb, lh, qBlocks, -1] });
  checkTensor('layoutTensors.maskIndices', mi, { dims: [lb, lh, qBlocks, -1] });
  if (fi.dims[3]! > kBlocks) throw new ShapeError(`Expected layoutTensors.fullIndices dims[3] <= ${kBlocks} (key blocks) but it is ${fi.dims[3]}`);
  if (mi.dims[3]! > kBlocks) throw new ShapeError(`Expected layoutTensors.maskIndices dims[3] <= ${kBlocks} (key blocks) but it is ${mi.dims[3]}`);
  checkLayoutBroadcast(lb, lh, pr);
  if (perm !== undefined) {
    checkTensor('options.keyPermutation', perm, { dims: [pr.batch, -1, pr.seqK] });
    const ph = perm.dims[1]!;
    if (ph !== pr.headsK && ph !== pr.headsQ) {
      throw new ShapeError(`Expected options.keyPermutation dims[1] to be Hk (${pr.headsK}) or Hq (${pr.headsQ}) but it is ${ph}`);
    }
  }
  return run(q, k, v, pr, lt, perm);
}

/**
 * @internal Checks a host key permutation [batch, heads, seqK] (every row a permutation of [0, seqK))
 * before it is uploaded; RangeError naming the position (check_key_perm_host).
 */
export function checkKeyPermutation(perm: Int32Array, batch: number, heads: number, seqK: number): void {
  if (!(perm instanceof Int32Array)) throw invalidType('perm', 'an Int32Array', perm);
  if (perm.length !== batch * heads * seqK) {
    throw new ShapeError(`Expected ${batch * heads * seqK} entries ([batch, heads, seqK]) for perm but received ${perm.length}`);
  }
  nativeOps<AttentionBinding>().attentionCheckKeyPerm(perm, batch, heads, seqK);
}
