/**
 * Every bad argument of DeltaLinear / DeltaState is rejected synchronously, before native work, with a
 * TypeError / RangeError (ShapeError for shapes, DisposedError for disposed objects) naming it; the layer
 * and its state keep working afterwards (checked at the end against the dense layer).
 */
import { Context } from '../../lib/context';
import { DeltaLinear, DeltaState } from '../../lib/delta';
import { DisposedError, ShapeError } from '../../lib/errors';
import { Tensor } from '../../lib/tensor';
import { cpuContext } from '../helpers/gpu';
import { rng } from '../helpers/random';
import { referenceLinear } from '../reference/delta';

const M = 6;
const K = 5;
const S = 3;
const ctx = () => cpuContext();
const f32 = (v: ArrayLike<number>, dims: number[]) => Tensor.from(Float32Array.from(v), dims, { context: ctx() });

function setup() {
  const { rng: r } = rng('errors');
  const w = r.normals(M * K, 0.5);
  const b = r.normals(M, 0.5);
  const W = f32(w, [M, K]);
  const B = f32(b, [M]);
  const layer = new DeltaLinear(W, B);
  const state = layer.createState(S);
  const x = f32(r.normals(S * K), [S, K]);
  return { r, w, b, W, B, layer, state, x };
}

describe('new DeltaLinear: bad arguments', () => {
  const { W, B } = setup();
  test.each<[string, () => unknown, RegExp, Function]>([
    ['weight not a tensor', () => new DeltaLinear([1, 2] as never), /Expected a Tensor for weight/, TypeError],
    ['weight rank 1', () => new DeltaLinear(f32([1, 2], [2])), /weight to have rank 2/, ShapeError],
    ['weight int32', () => new DeltaLinear(Tensor.from(new Int32Array(4), [2, 2], { context: ctx() })), /weight to have dtype/, TypeError],
    ['bias dims', () => new DeltaLinear(W, f32([1, 2], [2])), /bias to have dims \[6\]/, ShapeError],
    ['bias not a tensor', () => new DeltaLinear(W, 3 as never), /Expected a Tensor for bias/, TypeError],
    ['options not an object', () => new DeltaLinear(W, B, 5 as never), /options object for options/, TypeError],
    ['unknown option', () => new DeltaLinear(W, B, { thresh: 1 } as never), /options.thresh/, RangeError],
    ['negative threshold', () => new DeltaLinear(W, B, { threshold: -0.1 }), /finite number >= 0 for options.threshold but received -0.1/, RangeError],
    ['NaN threshold', () => new DeltaLinear(W, B, { threshold: NaN }), /options.threshold but received NaN/, RangeError],
    ['infinite threshold', () => new DeltaLinear(W, B, { threshold: Infinity }), /options.threshold but received Infinity/, RangeError],
    ['string threshold', () => new DeltaLinear(W, B, { threshold: '0.1' as never }), /a number for options.threshold/, TypeError],
    ['null threshold', () => new DeltaLinear(W, B, { threshold: null as never }), /options.threshold but received null/, TypeError],
    ['threshold vector length', () => new DeltaLinear(W, B, { threshold: [0.1, 0.2] }), /Expected 5 per-channel thresholds/, ShapeError],
    ['threshold vector negative entry', () => new DeltaLinear(W, B, { threshold: [0.1, 0.1, -1, 0.1, 0.1] }), /options.threshold\[2\] but received -1/, RangeError],
    ['threshold vector NaN entry', () => new DeltaLinear(W, B, { threshold: new Float32Array([0.1, NaN, 0, 0, 0]) }), /options.threshold\[1\] but received NaN/, RangeError],
    ['threshold vector non-number', () => new DeltaLinear(W, B, { threshold: [0.1, 0.1, 0.1, 'a', 0.1] as never }), /a number for options.threshold\[3\]/, TypeError],
    ['threshold Float64Array', () => new DeltaLinear(W, B, { threshold: new Float64Array(5) as never }), /options.threshold/, TypeError],
    ['threshold tensor dims', () => new DeltaLinear(W, B, { threshold: f32([1, 1], [2]) }), /options.threshold to have dims \[5\]/, ShapeError],
    ['mode', () => new DeltaLinear(W, B, { mode: 'delta' as never }), /one of "reference", "quantized" for options.mode/, RangeError],
    ['quantized without quantStep', () => new DeltaLinear(W, B, { mode: 'quantized' }), /required in "quantized" mode\) for options.quantStep/, TypeError],
    ['quantStep 0', () => new DeltaLinear(W, B, { mode: 'quantized', quantStep: 0 }), /options.quantStep but received 0/, RangeError],
    ['quantStep negative', () => new DeltaLinear(W, B, { mode: 'quantized', quantStep: -1 }), /options.quantStep/, RangeError],
    ['quantStep NaN', () => new DeltaLinear(W, B, { mode: 'quantized', quantStep: NaN }), /finite number for options.quantStep/, RangeError],
    ['quantStep underflows float32', () => new DeltaLinear(W, B, { mode: 'quantized', quantStep: 1e-50 }), /finite float32/, RangeError],
    ['quantStep overflows float32', () => new DeltaLinear(W, B, { mode: 'quantized', quantStep: 1e39 }), /finite float32/, RangeError],
    ['quantStep in reference mode', () => new DeltaLinear(W, B, { quantStep: 0.5 }), /no quantStep in "reference" mode/, RangeError],
    ['threshold in quantized mode', () => new DeltaLinear(W, B, { mode: 'quantized', quantStep: 0.5, threshold: 0.1 }), /no threshold in "quantized" mode/, RangeError],
    ['refreshEvery negative', () => new DeltaLinear(W, B, { refreshEvery: -1 }), /options.refreshEvery but received -1/, RangeError],
    ['refreshEvery fractional', () => new DeltaLinear(W, B, { refreshEvery: 1.5 }), /an integer for options.refreshEvery/, TypeError],
    ['denseFallbackDensity above 1', () => new DeltaLinear(W, B, { denseFallbackDensity: 1.1 }), /between 0 and 1 for options.denseFallbackDensity/, RangeError],
    ['denseFallbackDensity NaN', () => new DeltaLinear(W, B, { denseFallbackDensity: NaN }), /options.denseFallbackDensity/, RangeError],
    ['stream not a stream', () => new DeltaLinear(W, B, { stream: {} as never }), /a Stream for options.stream/, TypeError],
  ])('%s', (_name, fn, message, type) => {
    expect(fn).toThrow(type as never);
    expect(fn).toThrow(message);
  });

  test('disposed weight / bias', () => {
    const w = f32(new Float32Array(M * K).fill(1), [M, K]);
    w.dispose();
    expect(() => new DeltaLinear(w)).toThrow(DisposedError);
    const b = f32(new Float32Array(M).fill(1), [M]);
    b.dispose();
    expect(() => new DeltaLinear(W, b)).toThrow(DisposedError);
  });

  test('bias or threshold tensor on another context; a stream of another context', () => {
    const other = new Context({ device: 'cpu' });
    try {
      const ob = Tensor.from(new Float32Array(M), [M], { context: other });
      expect(() => new DeltaLinear(W, ob)).toThrow(/bias is on another context/);
      const ot = Tensor.from(new Float32Array(K), [K], { context: other });
      expect(() => new DeltaLinear(W, B, { threshold: ot })).toThrow(/options.threshold is on another context/);
      expect(() => new DeltaLinear(W, B, { stream: other.stream })).toThrow(/a stream of the tensors' context for options.stream/);
    } finally {
      other.dispose();
    }
  });

  test('a threshold tensor with a negative or NaN entry: ready rejects naming it, steps throw it', async () => {
    for (const [bad, at] of [[-0.5, 3], [NaN, 0]] as const) {
      const th = Float32Array.from([0.1, 0.1, 0.1, 0.1, 0.1]);
      th[at] = bad;
      const layer = new DeltaLinear(W, B, { threshold: f32(th, [K]) });
      const state = layer.createState(1);
      await expect(layer.ready).rejects.toThrow(new RegExp(`options.threshold\\[${at}\\] but received ${bad}`));
      expect(() => layer.step(state, f32(new Float32Array(K), [1, K]))).toThrow(RangeError);
    }
  });
});

describe('DeltaLinear.createState / step / DeltaState: bad arguments', () => {
  const { layer, state, x, W } = setup();
  const other = new DeltaLinear(W, null);
  const otherState = other.createState(S);

  test.each<[string, () => unknown, RegExp, Function]>([
    ['createState(-1)', () => layer.createState(-1), /streams but received -1/, RangeError],
    ['createState(1.5)', () => layer.createState(1.5), /an integer for streams/, TypeError],
    ['createState("2")', () => layer.createState('2' as never), /an integer for streams/, TypeError],
    ['createState unknown option', () => layer.createState(1, { streams: 2 } as never), /options.streams/, RangeError],
    ['state not a state', () => layer.step({} as never, x), /a DeltaState for state/, TypeError],
    ['state of another layer', () => layer.step(otherState, x), /a state created by this layer/, RangeError],
    ['x not a tensor', () => layer.step(state, [1, 2] as never), /a Tensor for x/, TypeError],
    ['x rank 1', () => layer.step(state, f32([1, 2, 3, 4, 5], [5])), /x to have rank 2/, ShapeError],
    ['x int32', () => layer.step(state, Tensor.from(new Int32Array(K), [1, K], { context: ctx() })), /x to have dtype/, TypeError],
    ['x columns', () => layer.step(state, f32(new Float32Array(4), [1, 4])), /Expected x to have 5 columns/, ShapeError],
    ['x more rows than streams', () => layer.step(state, f32(new Float32Array(4 * K), [4, K])), /at most 3 rows/, ShapeError],
    ['duplicate stream ids', () => layer.step(state, x, { streamIds: [0, 2, 0] }), /unique\) for options.streamIds\[2\] but received 0/, RangeError],
    ['stream id out of range', () => layer.step(state, x, { streamIds: [0, 1, 3] }), /stream id in \[0, 3\).*options.streamIds\[2\] but received 3/, RangeError],
    ['negative stream id', () => layer.step(state, x, { streamIds: new Int32Array([0, -1, 2]) }), /options.streamIds\[1\] but received -1/, RangeError],
    ['fractional stream id', () => layer.step(state, x, { streamIds: [0, 1.5, 2] }), /an integer for options.streamIds\[1\]/, TypeError],
    ['stream ids length', () => layer.step(state, x, { streamIds: [0, 1] }), /Expected 3 stream ids/, ShapeError],
    ['stream ids of a wrong kind', () => layer.step(state, x, { streamIds: 'abc' as never }), /options.streamIds/, TypeError],
    ['stream id tensor dims', () => layer.step(state, x, { streamIds: Tensor.from(new Int32Array(2), [2], { dtype: 'int32', context: ctx() }) }), /options.streamIds to have dims \[3\]/, ShapeError],
    ['stream id tensor dtype', () => layer.step(state, x, { streamIds: f32([0, 1, 2], [3]) }), /options.streamIds to have dtype int32/, TypeError],
    ['activation', () => layer.step(state, x, { activation: 'tanh' as never }), /options.activation but received "tanh"/, RangeError],
    ['out dims', () => layer.step(state, x, { out: f32(new Float32Array(M), [1, M]) }), /options.out to have dims \[3, 6\]/, ShapeError],
    ['out dtype', () => layer.step(state, x, { out: Tensor.empty([S, M], { dtype: 'float16', context: ctx() }) }), /options.out to have x's dtype \(float32\)/, TypeError],
    ['out is x', () => {
      const sq = new DeltaLinear(f32(new Float32Array(K * K).fill(0.1), [K, K]));
      const xx = f32(new Float32Array(K), [1, K]);
      return sq.step(sq.createState(1), xx, { out: xx });
    }, /a tensor other than x/, RangeError],
    ['step stream not a stream', () => layer.step(state, x, { stream: 1 as never }), /a Stream for options.stream/, TypeError],
    ['unknown step option', () => layer.step(state, x, { ids: [0] } as never), /options.ids/, RangeError],
    ['reset: id out of range', () => state.reset([0, 5]), /streamIds\[1\] but received 5/, RangeError],
    ['reset: fractional id', () => state.reset([0.5]), /an integer for streamIds\[0\]/, TypeError],
    ['restore: not a state', () => state.restore({} as never), /a DeltaState for snapshot/, TypeError],
    ['restore: another layer', () => state.restore(otherState), /a snapshot of a state of the same DeltaLinear layer/, RangeError],
    ['restore: other stream count', () => state.restore(layer.createState(2)), /a snapshot with 3 streams/, ShapeError],
    ['setWeights: dims', () => layer.setWeights(f32(new Float32Array(K * M), [K, M])), /weight to have dims \[6, 5\]/, ShapeError],
    ['setWeights: dtype', () => layer.setWeights(Tensor.empty([M, K], { dtype: 'bfloat16', context: ctx() })), /the layer's weight dtype \(float32\)/, TypeError],
    ['setWeights: bias dims', () => layer.setWeights(W, f32([1], [1])), /bias to have dims \[6\]/, ShapeError],
  ])('%s', (_name, fn, message, type) => {
    expect(fn).toThrow(type as never);
    expect(fn).toThrow(message);
  });

  test('disposed objects: DisposedError naming them; dispose is idempotent and works with `using`', () => {
    const l = new DeltaLinear(W, null);
    const s = l.createState(2);
    const snap = s.snapshot();
    snap.dispose();
    snap.dispose();
    expect(() => s.restore(snap)).toThrow(/snapshot was disposed/);
    s.dispose();
    expect(s.isDisposed).toBe(true);
    expect(() => l.step(s, f32(new Float32Array(K), [1, K]))).toThrow(/state was disposed/);
    expect(() => s.reset()).toThrow(DisposedError);
    expect(() => s.snapshot()).toThrow(DisposedError);
    const s2 = l.createState(1);
    const xd = f32(new Float32Array(K), [1, K]);
    xd.dispose();
    expect(() => l.step(s2, xd)).toThrow(/x was disposed/);
    {
      using scoped = l.createState(1);
      expect(scoped.isDisposed).toBe(false);
      var escaped = scoped; // eslint-disable-line no-var
    }
    expect(escaped.isDisposed).toBe(true);
    l[Symbol.dispose]();
    l.dispose();
    expect(l.isDisposed).toBe(true);
    expect(() => l.step(s2, f32(new Float32Array(K), [1, K]))).toThrow(/layer was disposed/);
    expect(() => l.createState(1)).toThrow(DisposedError);
    expect(() => l.invalidate()).toThrow(DisposedError);
  });

  test('after all the rejected calls the layer and state still compute the dense layer exactly', async () => {
    const fresh = setup();
    const out = fresh.layer.step(fresh.state, fresh.x);
    expect(Array.from(await out.active.toArray())).toEqual([K, K, K]);
    const want = referenceLinear(await fresh.x.toFloat32Array(), await fresh.W.toFloat32Array(), S, M, K, await fresh.B.toFloat32Array());
    const got = await out.y.toFloat32Array();
    for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-5 * (1 + Math.abs(want[i]!)));
    // The shared layer/state of this block too: nothing was enqueued by the failed calls.
    expect(Array.from((await state.read()).stepsTotal)).toEqual([0, 0, 0]);
    expect(state).toBeInstanceOf(DeltaState);
  });
});

// The CUDA step's grid is (K chunks, ceil(M / 256), ceil(rows / 16)) with gridDim.y and .z <= 65535: larger
// shapes are refused by lib/ before any native work. A CPU context whose `backend` reads "cuda" exercises
// the CUDA-only rules here (every check runs before a native call, so nothing reaches the CPU kernels).
describe('CUDA-only limits of the step grid (simulated CUDA context)', () => {
  const fakeCuda = () => {
    const c = new Context({ device: 'cpu' });
    Object.defineProperty(c, 'backend', { value: 'cuda' });
    return c;
  };

  test('more than 65535 * 256 outputs is a ShapeError at construction', () => {
    const c = fakeCuda();
    const W = Tensor.zeros([65535 * 256 + 1, 1], { dtype: 'bfloat16', context: c });
    expect(() => new DeltaLinear(W)).toThrow(ShapeError);
    expect(() => new DeltaLinear(W)).toThrow(/at most 16776960 outputs \(weight dims\[0\]\) on CUDA/);
    W.dispose();
    c.dispose();
  });

  test('more than 65535 * 16 rows in one step is a ShapeError', () => {
    const c = fakeCuda();
    const W = Tensor.zeros([1, 1], { context: c });
    const layer = new DeltaLinear(W);
    const rows = 65535 * 16;
    const state = layer.createState(rows + 1);
    const x = Tensor.zeros([rows + 1, 1], { dtype: 'bfloat16', context: c });
    expect(() => layer.step(state, x)).toThrow(ShapeError);
    expect(() => layer.step(state, x)).toThrow(/at most 1048560 rows in x per step on CUDA/);
    state.dispose();
    layer.dispose();
    x.dispose();
    W.dispose();
    c.dispose();
  });
});
