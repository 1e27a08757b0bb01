import { Tensor } from '../../lib/tensor';
import { testContexts } from '../helpers/gpu';
import { rng } from '../helpers/random';

describe.each(testContexts())('Stream on %s', (_name, getContext) => {
  test('ops on one stream run in order (last write wins, reads see earlier writes)', async () => {
    const ctx = getContext();
    const n = 1 << 16;
    const t = Tensor.zeros([n], { context: ctx });
    const chain: Tensor[] = [];
    let prev: Tensor = t;
    for (let i = 0; i < 50; i++) {
      const { rng: r } = rng(`order${i}`);
      const src = Tensor.from(r.normals(n), [n], { context: ctx });
      const copy = src.clone(); // depends on the upload before it
      chain.push(src, copy);
      prev = copy;
    }
    const last = await prev.toArray();
    const lastSrc = await chain[chain.length - 2]!.toArray();
    expect(Array.from(last)).toEqual(Array.from(lastSrc));
    for (const c of chain) c.dispose();
    t.dispose();
  });

  test('a slow task delays later tasks of the same stream only', async () => {
    const ctx = getContext();
    const s = ctx.createStream();
    const m0 = s.mark();
    s._native!.spinForTesting(150);
    const m1 = s.mark();
    await s.synchronize();
    expect(m1.elapsedSince(m0)).toBeGreaterThanOrEqual(140);
    s.dispose();
  });

  test('two streams run concurrently', async () => {
    const ctx = getContext();
    const a = ctx.createStream();
    const b = ctx.createStream();
    const t0 = performance.now();
    a._native!.spinForTesting(400);
    b._native!.spinForTesting(400);
    await Promise.all([a.synchronize(), b.synchronize()]);
    const wall = performance.now() - t0;
    // Serialised they would take >= 800 ms.
    expect(wall).toBeLessThan(700);
    a.dispose();
    b.dispose();
  });

  test('a tensor written on one stream and read on another is read after the write', async () => {
    const ctx = getContext();
    const a = ctx.createStream();
    const b = ctx.createStream();
    const n = 1 << 20;
    const { rng: r } = rng('xstream');
    const data = r.normals(n);
    a._native!.spinForTesting(200); // the upload on `a` waits behind this
    const t = Tensor.from(data, [n], { stream: a });
    const copy = t.clone({ stream: b }); // must wait for the upload on a
    const back = await copy.toArray({ stream: b });
    expect(back[0]).toBe(data[0]);
    expect(back[n - 1]).toBe(data[n - 1]);
    expect(Array.from(back.subarray(0, 1000))).toEqual(Array.from(data.subarray(0, 1000)));
    t.dispose();
    copy.dispose();
    a.dispose();
    b.dispose();
  });

  test('disposing a tensor while an op that reads it is queued is safe', async () => {
    const ctx = getContext();
    const s = ctx.createStream();
    const { rng: r } = rng('inflight');
    const data = r.normals(1 << 18);
    s._native!.spinForTesting(100);
    const t = Tensor.from(data, [data.length], { stream: s });
    const c = t.clone();
    t.dispose(); // the clone still runs on the original storage
    expect(Array.from((await c.toArray()).subarray(0, 100))).toEqual(Array.from(data.subarray(0, 100)));
    c.dispose();
    s.dispose();
  });

  test('a disposed stream rejects further use', () => {
    const ctx = getContext();
    const s = ctx.createStream();
    s.dispose();
    expect(() => Tensor.zeros([1], { stream: s })).toThrow(/disposed/);
    expect(() => ctx.stream.dispose()).toThrow(TypeError);
  });
});
