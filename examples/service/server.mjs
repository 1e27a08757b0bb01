#!/usr/bin/env node
/**
 * An example HTTP inference service on sparse-kernels (fastify).
 *
 *   POST   /attention          block-sparse attention on the request's q, k, v (block size 64)
 *   POST   /spmm               Y = X·Wᵀ with a pruned W held on the device since startup (block-CSR)
 *   POST   /delta/sessions     a per-client DeltaLinear state (the layer's weights are held on the device)
 *   POST   /delta/:id/step     one step of that client's stream: x [K] -> y [M]
 *   DELETE /delta/:id          frees the state
 *   GET    /health, /metrics   status; request counts, errors, p50/p99 per route, context.memory(), sessions
 *
 * What it shows about using the library in a long-running process:
 *   - one Context for the service, every tensor placed on it explicitly;
 *   - weights uploaded once and shared by all requests; every tensor a request creates is disposed in a
 *     `finally`, so `context.memory()` returns to its startup value between requests (the load test checks it);
 *   - the library validates synchronously (TypeError / RangeError naming the argument): those become
 *     400 with the library's message; ERR_OUT_OF_MEMORY (e.g. beyond `maxDeviceBytes`) becomes 503;
 *   - waiting on results (`toFloat32Array()`) never blocks the event loop, so requests overlap;
 *   - graceful shutdown: stop accepting, finish in-flight requests, dispose sessions, weights and context.
 *
 * Run: node examples/service/server.mjs [--port 3000] [--host 127.0.0.1] [--device auto|cpu|cuda] [--seed 1]
 *        [--max-sessions 256] [--session-idle-ms 60000] [--body-limit BYTES] [--max-device-bytes BYTES]
 *        [--max-seq-len 4096] [--refresh-every 64] [--log]
 * Import: `buildServer(opts)` returns the fastify instance (not listening); `makeSpmmWeights`,
 * `makeDeltaWeights`, `randomBlockMask` and `MODEL` let a client rebuild exactly what the server holds.
 */
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import Fastify from 'fastify';
import { BlockLayout, BlockSparseMatrix, Context, DeltaLinear, SparseKernelsError, Tensor, blockSparseAttention, spmm } from 'sparse-kernels';

/** Shapes of the held weights. Small enough for a 2-core CPU to serve thousands of requests a minute. */
export const MODEL = Object.freeze({
  /** SpMM: W [M, K] pruned to block-CSR (blocks of lowest L2 norm dropped), Y = X·Wᵀ. */
  spmm: Object.freeze({ M: 512, K: 512, blockShape: Object.freeze([32, 32]), sparsity: 0.75 }),
  /**
   * DeltaLinear: W [M, K] and b [M]; theta 0.05 on inputs of unit scale; a periodic exact refresh every
   * 64 steps of a stream bounds the float32 drift of long-lived sessions at the cost of one dense step.
   */
  delta: Object.freeze({ M: 256, K: 512, threshold: 0.05, refreshEvery: 64 }),
  /** Attention block size (tokens per block of the layouts). */
  attentionBlockSize: 64,
});

export const DEFAULT_LIMITS = Object.freeze({
  /** Request bodies beyond this get 413 (fastify's bodyLimit). ~16 MiB fits the largest attention request. */
  bodyLimit: 16 * 1024 * 1024,
  /** Values per attention tensor (q, k or v). */
  maxAttentionElements: 1 << 19,
  maxSeqLen: 4096,
  maxHeads: 64,
  maxHeadDim: 256,
  /** Rows of X per /spmm request. */
  maxSpmmRows: 64,
  /** Open delta sessions; creating one more answers 429. */
  maxSessions: 256,
  /** A session unused for this long is freed (its next step answers 404). */
  sessionIdleMs: 60_000,
  /** Cap on the context's live tensor bytes (0: none); beyond it requests answer 503 (ERR_OUT_OF_MEMORY). */
  maxDeviceBytes: 0,
});

// ---------------------------------------------------------------------------------------------------
// Deterministic weights: exported so that a client (the load test) builds bit-identical float32 values.

/** mulberry32: a tiny seeded PRNG, uniform in [0, 1). */
export function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normal(u) {
  return Math.sqrt(-2 * Math.log(Math.max(u(), 1e-12))) * Math.cos(2 * Math.PI * u());
}

/**
 * The dense SpMM weight W [M, K] (float32, row-major) before pruning. Each 32x32 block gets its own scale
 * in [0.25, 1.25), so block L2 norms are well separated: which blocks `sparsity` drops is then decided by
 * the weights, not by float rounding of near-equal norms, and a client can repeat the selection in float64.
 */
export function makeSpmmWeights(seed, { M, K, blockShape: [bm, bk] } = MODEL.spmm) {
  const u = rng(seed * 7919 + 17);
  const mb = Math.ceil(M / bm);
  const kb = Math.ceil(K / bk);
  const scale = Float64Array.from({ length: mb * kb }, () => 0.25 + u());
  const w = new Float32Array(M * K);
  for (let i = 0; i < M; i++) {
    for (let k = 0; k < K; k++) w[i * K + k] = (scale[Math.floor(i / bm) * kb + Math.floor(k / bk)] * normal(u)) / Math.sqrt(K);
  }
  return w;
}

/** The DeltaLinear weight W [M, K] and bias b [M] (float32). */
export function makeDeltaWeights(seed, { M, K } = MODEL.delta) {
  const u = rng(seed * 7919 + 29);
  const weight = Float32Array.from({ length: M * K }, () => normal(u) / Math.sqrt(K));
  const bias = Float32Array.from({ length: M }, () => 0.1 * normal(u));
  return { weight, bias };
}

/**
 * The block mask of the 'random' attention layout: [queryBlocks, keyBlocks], each block kept with
 * probability `density` (seeded), the diagonal block always (so every query sees at least its own block).
 * Blocks above the diagonal of a causal layout are dropped by BlockLayout.fromBlockMask.
 */
export function randomBlockMask(queryBlocks, keyBlocks, density, seed) {
  const u = rng(seed);
  const mask = new Uint8Array(queryBlocks * keyBlocks);
  for (let qb = 0; qb < queryBlocks; qb++) {
    for (let kb = 0; kb < keyBlocks; kb++) mask[qb * keyBlocks + kb] = qb === kb || u() < density ? 1 : 0;
  }
  return mask;
}

// ---------------------------------------------------------------------------------------------------

/** An error with an HTTP status (and a stable code for clients). */
export class HttpError extends Error {
  constructor(statusCode, code, message) {
    super(message);
    this.statusCode = statusCode;
    this.code = code;
  }
}

/**
 * Runs the synchronous part of library calls (validation + enqueue). The library reports bad arguments as
 * TypeError / RangeError (ShapeError is a RangeError) naming the argument: those are the client's fault.
 */
function libCall(fn) {
  try {
    return fn();
  } catch (e) {
    if (e instanceof TypeError || e instanceof RangeError) throw new HttpError(400, e.code ?? 'ERR_INVALID_ARG', e.message);
    throw e;
  }
}

/** Latency samples of one route: a ring of the last `cap` values (bounded memory on a long-running server). */
class RouteStats {
  constructor(cap = 8192) {
    this.count = 0;
    this.clientErrors = 0;
    this.serverErrors = 0;
    this.status = {};
    this.max = 0;
    this.samples = new Float64Array(cap);
    this.n = 0;
  }

  record(status, ms) {
    this.count++;
    if (status >= 500) this.serverErrors++;
    else if (status >= 400) this.clientErrors++;
    this.status[status] = (this.status[status] ?? 0) + 1;
    this.max = Math.max(this.max, ms);
    this.samples[this.n++ % this.samples.length] = ms;
  }

  toJSON() {
    const s = Array.from(this.samples.subarray(0, Math.min(this.n, this.samples.length))).sort((a, b) => a - b);
    const q = (p) => (s.length === 0 ? null : s[Math.min(s.length - 1, Math.floor(p * s.length))]);
    return {
      count: this.count,
      errors: this.clientErrors + this.serverErrors,
      clientErrors: this.clientErrors,
      serverErrors: this.serverErrors,
      status: this.status,
      p50Ms: q(0.5),
      p99Ms: q(0.99),
      maxMs: this.count === 0 ? null : this.max,
      window: s.length,
    };
  }
}

const FLT_MAX = 3.4028234663852886e38;
// Values must be finite in float32 (JSON cannot carry NaN/Infinity, but 1e999 parses to Infinity and 1e39
// overflows float32): ajv's strictNumbers rejects non-finite numbers, the bounds reject float32 overflow.
const float32Item = { type: 'number', minimum: -FLT_MAX, maximum: FLT_MAX };
const floatArray = (maxItems, minItems = 1) => ({ type: 'array', items: float32Item, minItems, maxItems });

/**
 * Builds the service (not listening): `await app.listen({ port, host })`, `await app.close()`.
 * @param {object} [opts]
 * @param {'auto'|'cpu'|'cuda'} [opts.device] backend of the service's context (default SPARSE_KERNELS_DEVICE or 'auto')
 * @param {number} [opts.seed] seed of the held weights (default 1)
 * @param {Partial<typeof DEFAULT_LIMITS>} [opts.limits]
 * @param {number} [opts.refreshEvery] DeltaLinear refreshEvery (default MODEL.delta.refreshEvery)
 * @param {boolean|object} [opts.logger] fastify logger (default false)
 */
export async function buildServer(opts = {}) {
  const limits = { ...DEFAULT_LIMITS, ...(opts.limits ?? {}) };
  const seed = opts.seed ?? 1;
  const refreshEvery = opts.refreshEvery ?? MODEL.delta.refreshEvery;
  const ctx = new Context({ ...(opts.device ? { device: opts.device } : {}), maxDeviceBytes: limits.maxDeviceBytes });
  // CUDA attention takes 16-bit inputs; the CPU computes float32 directly.
  const attentionDtype = ctx.backend === 'cuda' ? 'float16' : 'float32';

  // Weights, built once. The dense W only lives until the block-CSR copy exists.
  let W;
  let layer;
  try {
    const { M, K, blockShape, sparsity } = MODEL.spmm;
    const dense = Tensor.from(makeSpmmWeights(seed), [M, K], { context: ctx, copy: true });
    try {
      W = await BlockSparseMatrix.fromDense(dense, { blockShape, sparsity });
    } finally {
      dense.dispose();
    }
    const d = MODEL.delta;
    const { weight, bias } = makeDeltaWeights(seed);
    const wt = Tensor.from(weight, [d.M, d.K], { context: ctx, copy: true });
    const bt = Tensor.from(bias, [d.M], { context: ctx, copy: true });
    try {
      layer = new DeltaLinear(wt, bt, { threshold: d.threshold, refreshEvery });
    } finally {
      // The layer holds its own (transposed) copies; ours can go once the copy is enqueued.
      wt.dispose();
      bt.dispose();
    }
    await ctx.synchronize();
  } catch (e) {
    W?.dispose();
    layer?.dispose();
    ctx.dispose();
    throw e;
  }

  /** id -> { state, lastUsed, inflight, steps } */
  const sessions = new Map();
  const stats = new Map();
  let inFlight = 0;
  let closing = false;
  const startedAt = Date.now();

  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: limits.bodyLimit,
    // Strict types: no coercion of "1.5" to 1.5, unknown fields refused (not silently removed), no NaN/Infinity.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, strictNumbers: true, allErrors: false } },
    // On close: drop idle keep-alive connections at once, let connections with a request in flight finish.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  });

  app.decorate('sparse', {
    context: ctx,
    matrix: W,
    layer,
    sessions,
    limits,
    seed,
    get inFlight() {
      return inFlight;
    },
  });

  const routeKey = (req) => `${req.method} ${req.routeOptions?.url ?? '(unmatched)'}`;
  app.addHook('onRequest', async (req, reply) => {
    inFlight++;
    // 'close' fires once per response, whether it was sent or the client went away.
    reply.raw.once('close', () => inFlight--);
  });
  // A keep-alive connection whose request was in flight at close() would otherwise stay open (idle) until
  // its keep-alive timeout and hold the shutdown that long: close it with its last response.
  app.addHook('onSend', async (req, reply, payload) => {
    if (closing) reply.header('connection', 'close');
    return payload;
  });
  app.addHook('onResponse', async (req, reply) => {
    const key = routeKey(req);
    let s = stats.get(key);
    if (!s) stats.set(key, (s = new RouteStats()));
    s.record(reply.statusCode, reply.elapsedTime);
  });

  app.setErrorHandler((err, req, reply) => {
    let status = 500;
    let code = err.code ?? 'ERR_INTERNAL';
    if (err instanceof HttpError) status = err.statusCode;
    else if (err.validation) {
      status = 400;
      code = 'ERR_VALIDATION';
    } else if (err instanceof SparseKernelsError && err.code === 'ERR_OUT_OF_MEMORY') status = 503;
    // fastify's own client errors: 413 body too large, 415 content type, 400 malformed JSON, ...
    else if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) status = err.statusCode;
    if (status >= 500) req.log.error({ err }, 'request failed');
    reply.code(status).send({ error: STATUS_CODES[status], code, message: err.message });
  });

  // ---- attention ------------------------------------------------------------------------------------
  const L = limits;
  const attentionSchema = {
    body: {
      type: 'object',
      required: ['q', 'k', 'v', 'shape'],
      additionalProperties: false,
      properties: {
        q: floatArray(L.maxAttentionElements),
        k: floatArray(L.maxAttentionElements),
        v: floatArray(L.maxAttentionElements),
        shape: {
          type: 'array',
          minItems: 3,
          maxItems: 3,
          items: [
            { type: 'integer', minimum: 1, maximum: L.maxHeads },
            { type: 'integer', minimum: 1, maximum: L.maxSeqLen },
            { type: 'integer', minimum: 1, maximum: L.maxHeadDim },
          ],
        },
        kvHeads: { type: 'integer', minimum: 1, maximum: L.maxHeads },
        causal: { type: 'boolean' },
        layout: {
          type: 'object',
          additionalProperties: false,
          required: ['kind'],
          properties: {
            kind: { enum: ['dense', 'sliding', 'random'] },
            windowBlocks: { type: 'integer', minimum: 1, maximum: 1 << 16 },
            sinkBlocks: { type: 'integer', minimum: 0, maximum: 1 << 16 },
            density: { type: 'number', minimum: 0, maximum: 1 },
            seed: { type: 'integer', minimum: 0, maximum: 2 ** 32 - 1 },
          },
        },
      },
    },
  };

  function buildLayout(body, n) {
    const blockSize = MODEL.attentionBlockSize;
    const causal = body.causal ?? true;
    const kind = body.layout?.kind ?? 'dense';
    const lo = body.layout ?? {};
    if (kind === 'dense') return causal ? BlockLayout.denseCausal({ seqLen: n, blockSize }) : BlockLayout.dense({ queryLength: n, blockSize });
    // Sliding windows are causal by construction: with causal false the op itself refuses the layout (400).
    if (kind === 'sliding') return BlockLayout.slidingWindow({ seqLen: n, blockSize, windowBlocks: lo.windowBlocks ?? 4, sinkBlocks: lo.sinkBlocks ?? 1 });
    const blocks = Math.ceil(n / blockSize);
    const mask = randomBlockMask(blocks, blocks, lo.density ?? 0.5, lo.seed ?? 0);
    return BlockLayout.fromBlockMask(mask, { queryLength: n, blockSize, causal });
  }

  function checkLength(field, arr, want, what) {
    if (arr.length !== want) throw new HttpError(400, 'ERR_SHAPE', `body.${field} has ${arr.length} values but ${what} needs ${want}`);
  }

  app.post('/attention', { schema: attentionSchema }, async (req) => {
    const b = req.body;
    const [H, N, D] = b.shape;
    const Hk = b.kvHeads ?? H;
    const shapeText = `shape [${H}, ${N}, ${D}]`;
    if (H * N * D > L.maxAttentionElements) throw new HttpError(400, 'ERR_SHAPE', `body.shape [${H}, ${N}, ${D}] holds more than ${L.maxAttentionElements} values`);
    checkLength('q', b.q, H * N * D, shapeText);
    checkLength('k', b.k, Hk * N * D, `kvHeads ${Hk} x n ${N} x d ${D}`);
    checkLength('v', b.v, Hk * N * D, `kvHeads ${Hk} x n ${N} x d ${D}`);
    const owned = [];
    let layout;
    try {
      const out = libCall(() => {
        layout = buildLayout(b, N);
        const up = (data, heads) => {
          const t = Tensor.from(data, [1, heads, N, D], { dtype: attentionDtype, context: ctx });
          owned.push(t);
          return t;
        };
        const o = blockSparseAttention(up(b.q, H), up(b.k, Hk), up(b.v, Hk), layout, { causal: b.causal ?? true });
        owned.push(o);
        return o;
      });
      const values = await out.toFloat32Array();
      return { shape: [H, N, D], dtype: attentionDtype, density: layout.density(), out: Array.from(values) };
    } finally {
      // Tensors still in use by queued work are freed when that work is done (the runtime holds them).
      for (const t of owned) t.dispose();
      layout?.dispose();
    }
  });

  // ---- spmm -------------------------------------------------------------------------------------------
  const { M: SM, K: SK } = MODEL.spmm;
  const spmmSchema = {
    body: {
      type: 'object',
      required: ['x', 'rows'],
      additionalProperties: false,
      properties: { rows: { type: 'integer', minimum: 1, maximum: L.maxSpmmRows }, x: floatArray(L.maxSpmmRows * SK) },
    },
  };
  app.post('/spmm', { schema: spmmSchema }, async (req) => {
    const { x, rows } = req.body;
    checkLength('x', x, rows * SK, `rows ${rows} x K ${SK}`);
    const owned = [];
    try {
      const y = libCall(() => {
        const xt = Tensor.from(x, [rows, SK], { context: ctx });
        owned.push(xt);
        const yt = spmm(xt, W);
        owned.push(yt);
        return yt;
      });
      const values = await y.toFloat32Array();
      return { shape: [rows, SM], out: Array.from(values) };
    } finally {
      for (const t of owned) t.dispose();
    }
  });

  // ---- delta sessions ---------------------------------------------------------------------------------
  const { M: DM, K: DK } = MODEL.delta;
  const idParams = { type: 'object', properties: { id: { type: 'string', minLength: 1, maxLength: 64 } } };
  const session = (id) => {
    const s = sessions.get(id);
    if (!s) throw new HttpError(404, 'ERR_UNKNOWN_SESSION', `no open delta session ${id} (never created, deleted, or expired after ${L.sessionIdleMs} ms idle)`);
    return s;
  };
  const closeSession = (id, s) => {
    sessions.delete(id);
    // Safe with a step still queued: the runtime keeps the buffers until that work is done.
    s.state.dispose();
  };

  let creating = 0; // sessions being created (awaiting their state): they count against the cap too
  app.post('/delta/sessions', async (req, reply) => {
    if (sessions.size + creating >= L.maxSessions) throw new HttpError(429, 'ERR_TOO_MANY_SESSIONS', `the server holds its maximum of ${L.maxSessions} delta sessions`);
    const state = libCall(() => layer.createState(1));
    creating++;
    try {
      // Resolves once the state's buffers exist and are initialised; rejects with ERR_OUT_OF_MEMORY (503)
      // when they could not be allocated.
      await state.stats();
    } catch (e) {
      state.dispose();
      throw e;
    } finally {
      creating--;
    }
    if (closing) {
      state.dispose();
      throw new HttpError(503, 'ERR_CLOSING', 'the server is shutting down');
    }
    const id = randomUUID();
    sessions.set(id, { state, lastUsed: Date.now(), inflight: 0, steps: 0 });
    reply.code(201);
    return { id, inFeatures: DK, outFeatures: DM, threshold: MODEL.delta.threshold, refreshEvery, idleTimeoutMs: L.sessionIdleMs };
  });

  const stepSchema = {
    params: idParams,
    body: { type: 'object', required: ['x'], additionalProperties: false, properties: { x: floatArray(DK, DK) } },
  };
  app.post('/delta/:id/step', { schema: stepSchema }, async (req) => {
    const s = session(req.params.id);
    s.inflight++;
    s.lastUsed = Date.now();
    const owned = [];
    try {
      const { y, active } = libCall(() => {
        const xt = Tensor.from(req.body.x, [1, DK], { context: ctx });
        owned.push(xt);
        const r = layer.step(s.state, xt);
        owned.push(r.y, r.active);
        return r;
      });
      const step = ++s.steps;
      const [yv, av] = await Promise.all([y.toFloat32Array(), active.toArray()]);
      return { step, active: av[0], y: Array.from(yv) };
    } finally {
      for (const t of owned) t.dispose();
      s.inflight--;
      s.lastUsed = Date.now();
    }
  });

  app.delete('/delta/:id', { schema: { params: idParams } }, async (req, reply) => {
    closeSession(req.params.id, session(req.params.id));
    reply.code(204);
  });

  // Idle expiry. A session with a step in flight is never expired under it.
  const sweeper = setInterval(
    () => {
      const now = Date.now();
      for (const [id, s] of sessions) if (s.inflight === 0 && now - s.lastUsed > L.sessionIdleMs) closeSession(id, s);
    },
    Math.max(10, Math.min(1000, L.sessionIdleMs / 4)),
  );
  sweeper.unref();

  // ---- health and metrics -----------------------------------------------------------------------------
  app.get('/health', async () => ({
    status: 'ok',
    backend: ctx.backend,
    ...(ctx.fallbackReason ? { fallbackReason: ctx.fallbackReason } : {}),
    seed,
    model: {
      spmm: { ...MODEL.spmm, nnzBlocks: W.nnzBlocks, density: W.density, plan: W.plan(1).backend },
      delta: { ...MODEL.delta, refreshEvery },
      attention: { blockSize: MODEL.attentionBlockSize, dtype: attentionDtype },
    },
    limits: L,
  }));

  app.get('/metrics', { schema: { querystring: { type: 'object', additionalProperties: false, properties: { sync: { enum: ['0', '1'] } } } } }, async (req) => {
    if (req.query.sync === '1') {
      // Wait for all queued work, so that memory() counts only what is still owned (a tensor disposed while
      // its work was queued is freed when that work completes). An earlier request's failure (already
      // answered, e.g. out of memory) may surface here once: that is not this request's error.
      await ctx.synchronize().catch(() => {});
    }
    const routes = {};
    for (const [k, s] of [...stats].sort(([a], [b]) => a.localeCompare(b))) routes[k] = s.toJSON();
    return {
      uptimeS: (Date.now() - startedAt) / 1000,
      inFlight: inFlight - 1, // not counting this request
      openSessions: sessions.size,
      memory: ctx.memory(),
      routes,
    };
  });

  app.addHook('preClose', async () => {
    closing = true;
  });
  // After every in-flight request has completed: free sessions, weights, then the context.
  app.addHook('onClose', async () => {
    clearInterval(sweeper);
    for (const [id, s] of sessions) closeSession(id, s);
    layer.dispose();
    W.dispose();
    try {
      await ctx.synchronize();
    } catch {
      // an error of an already-answered request; the context is disposed below either way
    }
    // What is still allocated once everything the service owned is freed (0 tensors unless something leaked).
    app.sparse.finalMemory = ctx.memory();
    ctx.dispose();
  });

  return app;
}

// ---------------------------------------------------------------------------------------------------
// Command line

async function main() {
  const { values: a } = parseArgs({
    options: {
      port: { type: 'string', default: '3000' },
      host: { type: 'string', default: '127.0.0.1' },
      device: { type: 'string', default: process.env.SPARSE_KERNELS_DEVICE ?? 'auto' },
      seed: { type: 'string', default: '1' },
      'max-sessions': { type: 'string' },
      'session-idle-ms': { type: 'string' },
      'body-limit': { type: 'string' },
      'max-device-bytes': { type: 'string' },
      'max-seq-len': { type: 'string' },
      'max-attention-elements': { type: 'string' },
      'refresh-every': { type: 'string' },
      log: { type: 'boolean', default: false },
    },
  });
  const num = (v) => (v === undefined ? undefined : Number(v));
  const limits = Object.fromEntries(
    Object.entries({
      maxSessions: num(a['max-sessions']),
      sessionIdleMs: num(a['session-idle-ms']),
      bodyLimit: num(a['body-limit']),
      maxDeviceBytes: num(a['max-device-bytes']),
      maxSeqLen: num(a['max-seq-len']),
      maxAttentionElements: num(a['max-attention-elements']),
    }).filter(([, v]) => v !== undefined),
  );
  const app = await buildServer({
    device: a.device,
    seed: Number(a.seed),
    limits,
    refreshEvery: num(a['refresh-every']),
    logger: a.log ? { level: 'info' } : false,
  });
  const url = await app.listen({ port: Number(a.port), host: a.host });
  const { context } = app.sparse;
  const event = (e) => process.stdout.write(`${JSON.stringify(e)}\n`);
  event({ event: 'listening', url, backend: context.backend, pid: process.pid });

  let closing = false;
  const shutdown = async (signal) => {
    if (closing) return;
    closing = true;
    const inFlight = app.sparse.inFlight;
    const openSessions = app.sparse.sessions.size;
    // Stops accepting at once; resolves after the in-flight requests and the onClose hooks (disposal).
    const closed = app.close();
    event({ event: 'shutdown', signal, inFlight, openSessions });
    // A request that never finishes must not keep the process alive forever.
    const guard = setTimeout(() => {
      event({ event: 'shutdown-timeout' });
      process.exit(1);
    }, 30_000);
    guard.unref();
    try {
      await closed;
      event({ event: 'closed', contextDisposed: context.isDisposed, memoryBeforeContextDispose: app.sparse.finalMemory });
      process.exit(0);
    } catch (e) {
      process.stderr.write(`shutdown failed: ${e?.stack ?? e}\n`);
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    process.stderr.write(`${e?.stack ?? e}\n`);
    process.exit(1);
  });
}
