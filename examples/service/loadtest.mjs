#!/usr/bin/env node
/**
 * Load test of the example service (examples/service/server.mjs).
 *
 * Starts the server in this process on 127.0.0.1 (port 0) unless --url is given, then runs --clients
 * concurrent clients until --requests requests of the mix (attention, spmm, delta steps through each
 * client's own session) have been sent. Every response's status is checked; a fraction of the results
 * (--check, plus every delta step of the first --delta-check-clients clients) is compared, after the
 * timed phase so the checks do not inflate the latencies, with float64 references computed here:
 *
 *   attention  softmax(q·kᵀ / sqrt(d)) v over the keys the requested layout keeps (causal mask inside
 *              the diagonal block, the layout rebuilt here from the same block rules / seeded mask);
 *   spmm       X·Wᵀ with W rebuilt from the server's seed (makeSpmmWeights) and pruned here by block L2
 *              norm (the lowest ceil(sparsity * blocks) blocks dropped, as BlockSparseMatrix.fromDense);
 *   delta      a replay of the layer's reference semantics on the inputs actually sent: an input fires
 *              when |x - x_ref| >= theta in float32 (and changed), x_ref moves only where it fired, a
 *              stream re-initialises on its first step and every refreshEvery steps. Every step's fired
 *              count must equal the server's; checked steps compare y with W·x_ref + b (float rounding
 *              only) and with the dense W·x + b within the documented bound sum_k |W[i,k]|·theta.
 *
 * The server's context.memory() (GET /metrics?sync=1) before the load and after every session has been
 * deleted must be equal (tensors and bytes). Exit status 1 on any error, wrong result or memory growth.
 *
 * node examples/service/loadtest.mjs [--url http://host:port] [--clients 64] [--requests 10000]
 *   [--check 0.1] [--delta-check-clients 4] [--mix attention=0.2,spmm=0.3,delta=0.5] [--session-steps 100]
 *   [--device auto|cpu|cuda] [--refresh-every N] [--seed N] [--json out.json] [--quiet]
 * --device / --refresh-every configure the in-process server; --seed overrides the weights' seed the
 * references are built from (default: the one the server reports; a different one must fail the checks).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { parseArgs } from 'node:util';

import { MODEL, makeDeltaWeights, makeSpmmWeights, randomBlockMask, rng } from './server.mjs';

const { values: a } = parseArgs({
  options: {
    url: { type: 'string' },
    clients: { type: 'string', default: '64' },
    requests: { type: 'string', default: '10000' },
    check: { type: 'string', default: '0.1' },
    'delta-check-clients': { type: 'string', default: '4' },
    mix: { type: 'string', default: 'attention=0.2,spmm=0.3,delta=0.5' },
    'session-steps': { type: 'string', default: '100' },
    device: { type: 'string' },
    'refresh-every': { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'string' },
    quiet: { type: 'boolean', default: false },
  },
});
const CLIENTS = Number(a.clients);
const REQUESTS = Number(a.requests);
const CHECK = Number(a.check);
const DELTA_CHECK_CLIENTS = Number(a['delta-check-clients']);
const SESSION_STEPS = Number(a['session-steps']);
const MIX = Object.fromEntries(a.mix.split(',').map((p) => p.split('=')).map(([k, v]) => [k, Number(v)]));
for (const [k, v] of Object.entries(MIX)) {
  if (!['attention', 'spmm', 'delta'].includes(k) || !(v >= 0)) throw new Error(`--mix: unknown or negative entry ${k}=${v}`);
}
const log = (...x) => {
  if (!a.quiet) console.log(...x);
};

// ---------------------------------------------------------------------------------------------------
// Server

let app;
let base = a.url;
if (!base) {
  const { buildServer } = await import('./server.mjs');
  app = await buildServer({
    ...(a.device ? { device: a.device } : {}),
    ...(a['refresh-every'] ? { refreshEvery: Number(a['refresh-every']) } : {}),
  });
  base = await app.listen({ port: 0, host: '127.0.0.1' });
}
base = base.replace(/\/$/, '');

async function getJson(path) {
  const r = await fetch(base + path);
  if (r.status !== 200) throw new Error(`GET ${path}: HTTP ${r.status} ${await r.text()}`);
  return r.json();
}

const health = await getJson('/health');
const backend = health.backend;
const seed = a.seed !== undefined ? Number(a.seed) : health.seed;
log(`server ${base} (${app ? 'in-process' : 'external'}), backend ${backend}, weights seed ${seed}`);

// ---------------------------------------------------------------------------------------------------
// References (float64)

const SP = MODEL.spmm;
/** W of the server, pruned here: float64 [M, K] with the dropped blocks zeroed. */
const spmmW = (() => {
  const w = Float64Array.from(makeSpmmWeights(seed));
  const [bm, bk] = SP.blockShape;
  const mb = Math.ceil(SP.M / bm);
  const kb = Math.ceil(SP.K / bk);
  const norms = [];
  for (let r = 0; r < mb; r++) {
    for (let c = 0; c < kb; c++) {
      let s = 0;
      for (let i = r * bm; i < Math.min(SP.M, (r + 1) * bm); i++) for (let k = c * bk; k < Math.min(SP.K, (c + 1) * bk); k++) s += w[i * SP.K + k] ** 2;
      norms.push({ idx: r * kb + c, r, c, s });
    }
  }
  // Lowest norms dropped first; ties: lower block index first (the documented rule).
  norms.sort((x, y) => x.s - y.s || x.idx - y.idx);
  for (const { r, c } of norms.slice(0, Math.ceil(SP.sparsity * mb * kb))) {
    for (let i = r * bm; i < Math.min(SP.M, (r + 1) * bm); i++) for (let k = c * bk; k < Math.min(SP.K, (c + 1) * bk); k++) w[i * SP.K + k] = 0;
  }
  return w;
})();

const DL = MODEL.delta;
const deltaW = makeDeltaWeights(seed);
/** sum_k |W[i, k]| per output row (the error bound's factor). */
const deltaAbsRow = Float64Array.from({ length: DL.M }, (_, i) => {
  let s = 0;
  for (let k = 0; k < DL.K; k++) s += Math.abs(deltaW.weight[i * DL.K + k]);
  return s;
});

// Tolerances. CPU float32: the op accumulates in float32, whose worst-case summation error over n terms is
// about n·2^-24 of the sum of |terms| (3e-5 for K = 512). CUDA: float16 attention inputs, and a float32
// SpMM that may use TF32 tensor cores (10-bit mantissa).
const cuda = backend === 'cuda';
// The CPU attention error is ~1e-7 here (N <= 192 keys per row); 1e-5 leaves a margin and still catches
// any wrong mask, scale or head mapping (errors of 1e-2 and more). The delta accumulator adds float32
// rounding at every step until its refresh; 5e-5 of the row's magnitude is ~100x what we observe.
const TOL = {
  attention: cuda ? 2e-2 : 1e-5, // absolute; inputs in [-1, 1], so |out| <= 1
  spmmRel: cuda ? 5e-3 : 3.1e-5, // times sum_k |x_k W_ik|
  deltaRel: cuda ? 5e-3 : 5e-5, // times |b_i| + sum_k |W_ik x_ref_k|
};

/** Largest error / tolerance seen per check (how close correct results come to the limits). */
const margins = { attention: 0, spmm: 0, delta: 0, deltaBound: 0 };
function note(kind, ratio) {
  if (!(ratio <= margins[kind])) margins[kind] = Number.isNaN(ratio) ? Infinity : ratio;
}

function attentionReference(s) {
  const { H, Hk, N, D, causal, layout, q, k, v } = s;
  const B = MODEL.attentionBlockSize;
  const nb = Math.ceil(N / B);
  const mask = layout.kind === 'random' ? randomBlockMask(nb, nb, layout.density, layout.seed) : undefined;
  const window = layout.windowBlocks ?? 4;
  const sinks = layout.sinkBlocks ?? 1;
  const keep = (qb, kb) => {
    if (causal && kb > qb) return false;
    if (layout.kind === 'dense') return true;
    if (layout.kind === 'sliding') return kb < sinks || kb > qb - window;
    return mask[qb * nb + kb] === 1;
  };
  const out = new Float64Array(H * N * D);
  const scale = 1 / Math.sqrt(D);
  const sc = new Float64Array(N);
  for (let h = 0; h < H; h++) {
    const hk = Math.floor(h / (H / Hk));
    for (let i = 0; i < N; i++) {
      const qi = (h * N + i) * D;
      let mx = -Infinity;
      for (let j = 0; j < N; j++) {
        sc[j] = -Infinity;
        if (!keep(Math.floor(i / B), Math.floor(j / B)) || (causal && j > i)) continue;
        const kj = (hk * N + j) * D;
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[qi + d] * k[kj + d];
        sc[j] = dot * scale;
        mx = Math.max(mx, sc[j]);
      }
      if (mx === -Infinity) continue; // no kept key: out = 0
      let den = 0;
      for (let j = 0; j < N; j++) if (sc[j] !== -Infinity) den += Math.exp(sc[j] - mx);
      for (let j = 0; j < N; j++) {
        if (sc[j] === -Infinity) continue;
        const p = Math.exp(sc[j] - mx) / den;
        const vj = (hk * N + j) * D;
        for (let d = 0; d < D; d++) out[qi + d] += p * v[vj + d];
      }
    }
  }
  return out;
}

function checkAttention(s) {
  if (s.res.out.length !== s.H * s.N * s.D || s.res.shape.join() !== [s.H, s.N, s.D].join()) return `shape ${s.res.shape} / ${s.res.out.length} values`;
  const ref = attentionReference(s);
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(s.res.out[i] - ref[i]);
    if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;
  }
  note('attention', worst / TOL.attention);
  return worst <= TOL.attention ? null : `max abs error ${worst.toExponential(3)} > ${TOL.attention}`;
}

function checkSpmm(s) {
  const { rows, x, res } = s;
  if (res.out.length !== rows * SP.M) return `${res.out.length} values for ${rows} rows`;
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < SP.M; i++) {
      let y = 0;
      let l1 = 0;
      for (let k = 0; k < SP.K; k++) {
        const t = x[r * SP.K + k] * spmmW[i * SP.K + k];
        y += t;
        l1 += Math.abs(t);
      }
      const e = Math.abs(res.out[r * SP.M + i] - y);
      note('spmm', e / (TOL.spmmRel * l1 + 1e-7));
      if (!(e <= TOL.spmmRel * l1 + 1e-7)) return `Y[${r}, ${i}] = ${res.out[r * SP.M + i]}, reference ${y} (error ${e.toExponential(3)}, tolerance ${(TOL.spmmRel * l1 + 1e-7).toExponential(3)})`;
    }
  }
  return null;
}

/** Replays one session; returns a list of problems (empty when every step matches). */
function checkDeltaSession(sess) {
  const { K, M } = DL;
  const th = Math.fround(sess.threshold);
  const R = sess.refreshEvery;
  const xref = new Float32Array(K);
  let initialized = false;
  let sinceInit = 0;
  const problems = [];
  let checkedY = 0;
  for (const st of sess.steps) {
    const x = st.x;
    let count = 0;
    if (!initialized || (R > 0 && sinceInit >= R)) {
      xref.set(x);
      count = K;
      sinceInit = 0;
      initialized = true;
    } else {
      for (let k = 0; k < K; k++) {
        const dd = Math.fround(x[k] - xref[k]);
        if (Number.isNaN(x[k]) || (Math.abs(dd) >= th && dd !== 0)) {
          xref[k] = x[k];
          count++;
        }
      }
      sinceInit++;
    }
    if (st.active !== count) problems.push(`step ${st.step}: ${st.active} inputs fired, reference ${count}`);
    if (!st.y) continue;
    checkedY++;
    if (st.y.length !== M) {
      problems.push(`step ${st.step}: ${st.y.length} outputs`);
      continue;
    }
    for (let i = 0; i < M; i++) {
      let yr = deltaW.bias[i];
      let mag = Math.abs(deltaW.bias[i]);
      let yd = deltaW.bias[i];
      for (let k = 0; k < K; k++) {
        const w = deltaW.weight[i * K + k];
        yr += w * xref[k];
        mag += Math.abs(w * xref[k]);
        yd += w * x[k];
      }
      const tol = TOL.deltaRel * mag + 1e-6;
      const e = Math.abs(st.y[i] - yr);
      note('delta', e / tol);
      note('deltaBound', Math.abs(st.y[i] - yd) / (deltaAbsRow[i] * th));
      if (!(e <= tol)) {
        problems.push(`step ${st.step}: y[${i}] = ${st.y[i]}, W·x_ref + b = ${yr} (error ${e.toExponential(3)} > ${tol.toExponential(3)})`);
        break;
      }
      const bound = deltaAbsRow[i] * th + tol;
      if (!(Math.abs(st.y[i] - yd) <= bound)) {
        problems.push(`step ${st.step}: |y - (W·x + b)|[${i}] = ${Math.abs(st.y[i] - yd)} above the bound ${bound}`);
        break;
      }
    }
  }
  return { problems, checkedY };
}

// ---------------------------------------------------------------------------------------------------
// Clients

const ENDPOINTS = ['POST /attention', 'POST /spmm', 'POST /delta/:id/step', 'POST /delta/sessions', 'DELETE /delta/:id'];
const lat = Object.fromEntries(ENDPOINTS.map((e) => [e, []]));
const errs = Object.fromEntries(ENDPOINTS.map((e) => [e, 0]));
const errorSamples = [];
const samples = { attention: [], spmm: [] };
const deltaSessions = [];

/** One request; returns the parsed body, or undefined after recording an error. */
async function call(endpoint, method, path, body, expect) {
  const t0 = performance.now();
  let status = 0;
  let text = '';
  try {
    const r = await fetch(base + path, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    status = r.status;
    text = await r.text();
  } catch (e) {
    text = String(e?.cause ?? e);
  }
  lat[endpoint].push(performance.now() - t0);
  if (status !== expect) {
    errs[endpoint]++;
    if (errorSamples.length < 20) errorSamples.push({ endpoint, status, body: text.slice(0, 300) });
    return undefined;
  }
  return text === '' ? {} : JSON.parse(text);
}

const r3 = (x) => Math.round(x * 1000) / 1000; // 3 decimals: short JSON, exact float32 rounding on both sides
const uniformArray = (u, n) => Array.from({ length: n }, () => r3(u() * 2 - 1));
function gaussian(u) {
  return Math.sqrt(-2 * Math.log(Math.max(u(), 1e-12))) * Math.cos(2 * Math.PI * u());
}

let issued = 0;
const mixTotal = Object.values(MIX).reduce((x, y) => x + y, 0);

async function client(c) {
  const u = rng(0x5eed + c * 101);
  const pick = () => {
    let t = u() * mixTotal;
    for (const [k, v] of Object.entries(MIX)) if ((t -= v) < 0) return k;
    return 'delta';
  };
  const fullDeltaCheck = c < DELTA_CHECK_CLIENTS;
  let sess; // { id, steps: [], threshold, refreshEvery, broken }
  let x; // the client's feature vector (3-decimal values)

  async function closeSession() {
    if (!sess) return;
    await call('DELETE /delta/:id', 'DELETE', `/delta/${sess.id}`, undefined, 204);
    sess = undefined;
  }

  while (issued < REQUESTS) {
    issued++;
    const op = pick();
    if (op === 'attention') {
      const H = u() < 0.5 ? 2 : 4;
      const Hk = u() < 0.5 ? H : H / 2;
      const N = [64, 100, 128, 160, 192][Math.floor(u() * 5)];
      const D = cuda ? 64 : u() < 0.5 ? 16 : 32; // CUDA kernels take head dims 64/128/256
      const kinds = [
        { causal: true, layout: { kind: 'dense' } },
        { causal: false, layout: { kind: 'dense' } },
        { causal: true, layout: { kind: 'sliding', windowBlocks: 2, sinkBlocks: 1 } },
        { causal: true, layout: { kind: 'random', density: 0.5, seed: Math.floor(u() * 1e6) } },
        { causal: false, layout: { kind: 'random', density: 0.4, seed: Math.floor(u() * 1e6) } },
      ];
      const { causal, layout } = kinds[Math.floor(u() * kinds.length)];
      const q = uniformArray(u, H * N * D);
      const k = uniformArray(u, Hk * N * D);
      const v = uniformArray(u, Hk * N * D);
      const res = await call('POST /attention', 'POST', '/attention', { q, k, v, shape: [H, N, D], kvHeads: Hk, causal, layout }, 200);
      if (res && u() < CHECK) {
        samples.attention.push({ H, Hk, N, D, causal, layout, q: new Float32Array(q), k: new Float32Array(k), v: new Float32Array(v), res: { shape: res.shape, out: new Float32Array(res.out) } });
      }
    } else if (op === 'spmm') {
      const rows = [1, 2, 4, 8, 16][Math.floor(u() * 5)];
      const xs = uniformArray(u, rows * SP.K);
      const res = await call('POST /spmm', 'POST', '/spmm', { rows, x: xs }, 200);
      if (res && u() < CHECK) samples.spmm.push({ rows, x: new Float32Array(xs), res: { out: new Float32Array(res.out) } });
    } else {
      if (sess && sess.steps.length >= SESSION_STEPS) await closeSession();
      if (!sess) {
        const res = await call('POST /delta/sessions', 'POST', '/delta/sessions', undefined, 201);
        if (!res) continue;
        sess = { id: res.id, threshold: res.threshold, refreshEvery: res.refreshEvery, steps: [], broken: false, client: c };
        deltaSessions.push(sess);
        x = uniformArray(u, DL.K);
      } else {
        // Slow drift (most inputs stay within theta of their reference) with occasional scene cuts.
        const cut = u() < 0.05;
        for (let k = 0; k < DL.K; k++) x[k] = cut && u() < 0.25 ? r3(u() * 2 - 1) : r3(x[k] + 0.02 * gaussian(u));
      }
      const res = await call('POST /delta/:id/step', 'POST', `/delta/${sess.id}/step`, { x }, 200);
      if (!res) {
        sess.broken = true; // the server's state is unknown from here: do not replay this session
        continue;
      }
      const keepY = fullDeltaCheck || u() < CHECK;
      sess.steps.push({ step: res.step, x: new Float32Array(x), active: res.active, y: keepY ? new Float32Array(res.y) : undefined });
    }
  }
  await closeSession();
}

const memBefore = (await getJson('/metrics?sync=1')).memory;
const t0 = performance.now();
await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
const wallS = (performance.now() - t0) / 1000;
const metricsAfter = await getJson('/metrics?sync=1');
const memAfter = metricsAfter.memory;

// ---------------------------------------------------------------------------------------------------
// Checks (after the timed phase)

const wrong = [];
const checked = { attention: 0, spmm: 0, deltaSteps: 0, deltaOutputs: 0, deltaSessions: 0 };
for (const s of samples.attention) {
  checked.attention++;
  const p = checkAttention(s);
  if (p) wrong.push({ op: 'attention', shape: [s.H, s.N, s.D], kvHeads: s.Hk, causal: s.causal, layout: s.layout, problem: p });
}
for (const s of samples.spmm) {
  checked.spmm++;
  const p = checkSpmm(s);
  if (p) wrong.push({ op: 'spmm', rows: s.rows, problem: p });
}
for (const sess of deltaSessions) {
  if (sess.broken) continue;
  checked.deltaSessions++;
  checked.deltaSteps += sess.steps.length;
  const { problems, checkedY } = checkDeltaSession(sess);
  checked.deltaOutputs += checkedY;
  for (const p of problems) wrong.push({ op: 'delta', client: sess.client, session: sess.id, problem: p });
}

const memKeys = ['tensors', 'hostBytes', 'deviceBytes'];
const memoryOk = memKeys.every((k) => memAfter[k] === memBefore[k]) && metricsAfter.openSessions === 0;

// ---------------------------------------------------------------------------------------------------
// Report

function summary(xs) {
  const s = [...xs].sort((p, q) => p - q);
  const q = (p) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN);
  return { count: s.length, p50Ms: q(0.5), p99Ms: q(0.99), maxMs: s.length ? s[s.length - 1] : NaN, meanMs: s.reduce((x, y) => x + y, 0) / (s.length || 1) };
}
const endpoints = Object.fromEntries(ENDPOINTS.map((e) => [e, { ...summary(lat[e]), errors: errs[e] }]));
const all = ENDPOINTS.flatMap((e) => lat[e]);
const overall = { ...summary(all), errors: Object.values(errs).reduce((x, y) => x + y, 0) };
const totalRequests = all.length;
const errorsTotal = overall.errors;

const f = (v) => (Number.isFinite(v) ? (v >= 100 ? v.toFixed(0) : v.toFixed(2)) : '-');
const rowsOut = [['endpoint', 'requests', 'errors', 'p50 ms', 'p99 ms', 'max ms', 'mean ms']];
for (const e of ENDPOINTS) rowsOut.push([e, String(endpoints[e].count), String(endpoints[e].errors), f(endpoints[e].p50Ms), f(endpoints[e].p99Ms), f(endpoints[e].maxMs), f(endpoints[e].meanMs)]);
rowsOut.push(['overall', String(overall.count), String(overall.errors), f(overall.p50Ms), f(overall.p99Ms), f(overall.maxMs), f(overall.meanMs)]);
const widths = rowsOut[0].map((_, i) => Math.max(...rowsOut.map((r) => r[i].length)));
const fmtRow = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
console.log(`load test: ${CLIENTS} clients, ${REQUESTS} requests of the mix ${a.mix} (+ session create/delete), backend ${backend}`);
console.log(`machine: ${cpu}, ${os.cpus().length} cores, Node ${process.version}; server ${app ? 'in-process' : base}`);
console.log('');
console.log(fmtRow(rowsOut[0]));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const r of rowsOut.slice(1, -1)) console.log(fmtRow(r));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
console.log(fmtRow(rowsOut[rowsOut.length - 1]));
console.log('');
console.log(`throughput: ${(totalRequests / wallS).toFixed(1)} requests/s (${totalRequests} requests in ${wallS.toFixed(2)} s)`);
console.log(
  `checked against float64 references: ${checked.attention} attention, ${checked.spmm} spmm, ${checked.deltaOutputs} delta outputs ` +
    `(fired counts of all ${checked.deltaSteps} steps of ${checked.deltaSessions} sessions); wrong results: ${wrong.length}`,
);
console.log(
  `largest error / tolerance: attention ${margins.attention.toFixed(3)}, spmm ${margins.spmm.toFixed(3)}, delta vs W·x_ref + b ${margins.delta.toFixed(3)}; ` +
    `delta |y - (W·x + b)| / (theta·sum|W|) ${margins.deltaBound.toFixed(3)}`,
);
console.log(`server memory before: ${memKeys.map((k) => `${k} ${memBefore[k]}`).join(', ')}`);
console.log(`server memory after:  ${memKeys.map((k) => `${k} ${memAfter[k]}`).join(', ')}, open sessions ${metricsAfter.openSessions} -> ${memoryOk ? 'back to baseline' : 'GROWTH'}`);
for (const e of errorSamples.slice(0, 5)) console.log(`error: ${e.endpoint} -> HTTP ${e.status} ${e.body}`);
for (const w of wrong.slice(0, 5)) console.log(`wrong: ${JSON.stringify(w)}`);

const report = {
  date: new Date().toISOString(),
  machine: { cpu, cores: os.cpus().length, node: process.version, platform: `${process.platform}-${process.arch}` },
  server: { url: app ? 'in-process' : base, backend, seed },
  config: { clients: CLIENTS, requests: REQUESTS, check: CHECK, deltaCheckClients: DELTA_CHECK_CLIENTS, mix: MIX, sessionSteps: SESSION_STEPS },
  wallS,
  totalRequests,
  throughputRps: totalRequests / wallS,
  endpoints,
  overall,
  errors: errorsTotal,
  errorSamples,
  checked,
  wrongResults: wrong.length,
  wrong: wrong.slice(0, 50),
  tolerances: TOL,
  largestErrorOverTolerance: margins,
  memory: { before: memBefore, after: memAfter, openSessionsAfter: metricsAfter.openSessions, ok: memoryOk },
  serverMetrics: metricsAfter,
};
if (a.json) fs.writeFileSync(a.json, `${JSON.stringify(report, null, 2)}\n`);

if (app) await app.close();
const ok = errorsTotal === 0 && wrong.length === 0 && memoryOk;
console.log(ok ? 'PASS' : 'FAIL');
process.exit(ok ? 0 : 1);
