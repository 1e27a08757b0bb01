/**
 * The example HTTP service (examples/service/server.mjs) and its load test, run as child processes on the
 * built package (dist/, through the package's self-reference) and the addon of SPARSE_KERNELS_BINARY, as a
 * user runs them: jest's CommonJS sandbox cannot import the ES-module examples, and a crash or a hang of the
 * server must fail a test, not a jest worker.
 *
 *   - a small load test (8 clients, 600 requests): every response 2xx, every checked result equal to the
 *     float64 reference, server memory back to its baseline; and the same checker run against weights of
 *     another seed must report wrong results and exit 1 (the references are not vacuous);
 *   - request validation: schema errors (types, lengths, non-finite, unknown fields) and the library's
 *     own TypeError / RangeError as 400 naming the field, 413 beyond the body limit, 404 for unknown
 *     sessions, 429 beyond the session cap, idle expiry, 503 when the context's memory cap is exceeded;
 *   - graceful shutdown: SIGTERM with a request in flight completes that request, then exits 0 with every
 *     tensor of the service freed.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
const SERVER = path.join(ROOT, 'examples', 'service', 'server.mjs');
const LOADTEST = path.join(ROOT, 'examples', 'service', 'loadtest.mjs');
const ENV = { ...process.env, SPARSE_KERNELS_LOG: 'silent', SPARSE_KERNELS_DEVICE: 'cpu' };

beforeAll(() => {
  // The examples import 'sparse-kernels', which resolves to dist/ through package.json "exports".
  if (!fs.existsSync(path.join(ROOT, 'dist', 'esm', 'index.js'))) throw new Error('dist/ is missing: run npm run build:ts first');
});

interface Reply {
  status: number;
  body: string;
  json: any; // parsed JSON of any route
}

/** One HTTP request on a fresh connection; `body` is sent as is (a string of JSON, or raw bytes). */
function request(url: string, method: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const hdrs: Record<string, string | number> = { connection: 'close', ...headers };
    if (body !== undefined) {
      hdrs['content-type'] ??= 'application/json';
      hdrs['content-length'] = Buffer.byteLength(body);
    }
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: hdrs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text === '' ? undefined : JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body: text, json });
      });
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const post = (url: string, body: unknown) => request(url, 'POST', JSON.stringify(body));

interface Server {
  url: string;
  proc: ChildProcess;
  events: Array<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: string | null }>;
  stderr: () => string;
}

/** Starts `node server.mjs --port 0 ...args` and resolves once it listens (its first stdout line). */
function startServer(args: string[]): Promise<Server> {
  const proc = spawn(process.execPath, [SERVER, '--port', '0', '--device', 'cpu', ...args], { cwd: ROOT, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  const events: Array<Record<string, unknown>> = [];
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    let buf = '';
    proc.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const e = JSON.parse(line) as Record<string, unknown>;
        events.push(e);
        if (e.event === 'listening') resolve({ url: e.url as string, proc, events, exited, stderr: () => err });
      }
    });
    void exited.then(({ code, signal }) => reject(new Error(`server exited before listening (${code ?? signal}): ${err}`)));
  });
}

async function stopServer(s: Server | undefined): Promise<void> {
  if (!s || s.proc.exitCode !== null || s.proc.signalCode !== null) return;
  s.proc.kill('SIGTERM');
  await s.exited;
}

function runLoadtest(args: string[]): Promise<{ code: number; stdout: string; stderr: string; report: any }> {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sk-service-')), 'report.json');
  return new Promise((resolve) => {
    execFile(process.execPath, [LOADTEST, '--device', 'cpu', '--json', out, ...args], { cwd: ROOT, env: ENV, timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number }) | null;
      const report = fs.existsSync(out) ? JSON.parse(fs.readFileSync(out, 'utf8')) : undefined;
      fs.rmSync(path.dirname(out), { recursive: true, force: true });
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, stdout, stderr, report });
    });
  });
}

describe('load test (in-process server, 8 clients, 600 requests)', () => {
  test('every response succeeds, every checked result matches the float64 reference, memory returns to baseline', async () => {
    // Short sessions and a short refresh period, so that session rotation under load and the delta layer's
    // periodic dense refresh are both exercised at this size.
    const r = await runLoadtest(['--clients', '8', '--requests', '600', '--session-steps', '20', '--refresh-every', '8', '--check', '0.3']);
    if (r.code !== 0) throw new Error(`load test failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
    const rep = r.report;
    expect(rep.errors).toBe(0);
    expect(rep.wrongResults).toBe(0);
    const mix = rep.endpoints['POST /attention'].count + rep.endpoints['POST /spmm'].count + rep.endpoints['POST /delta/:id/step'].count;
    expect(mix).toBe(600);
    for (const e of ['POST /attention', 'POST /spmm', 'POST /delta/:id/step']) expect(rep.endpoints[e].count).toBeGreaterThan(50);
    // Sessions were rotated under load: more were created than there are clients, and all were deleted.
    expect(rep.endpoints['POST /delta/sessions'].count).toBeGreaterThan(8);
    expect(rep.endpoints['DELETE /delta/:id'].count).toBe(rep.endpoints['POST /delta/sessions'].count);
    // The checks ran: results of every kind, and the fired count of every delta step.
    expect(rep.checked.attention).toBeGreaterThan(10);
    expect(rep.checked.spmm).toBeGreaterThan(10);
    expect(rep.checked.deltaSteps).toBe(rep.endpoints['POST /delta/:id/step'].count);
    expect(rep.checked.deltaOutputs).toBeGreaterThan(50);
    // Memory: the same live tensors and bytes after the load as before it (only the held weights).
    expect(rep.memory.ok).toBe(true);
    expect(rep.memory.after.tensors).toBe(rep.memory.before.tensors);
    expect(rep.memory.after.hostBytes).toBe(rep.memory.before.hostBytes);
    expect(rep.memory.before.tensors).toBeGreaterThan(0);
    expect(rep.memory.openSessionsAfter).toBe(0);
    // The server's own counters agree with the client: every request seen, none failed.
    const routes = rep.serverMetrics.routes;
    for (const e of ['POST /attention', 'POST /spmm', 'POST /delta/:id/step', 'POST /delta/sessions', 'DELETE /delta/:id']) {
      expect(routes[e].count).toBe(rep.endpoints[e].count);
      expect(routes[e].errors).toBe(0);
      expect(routes[e].p50Ms).toBeGreaterThan(0);
      expect(routes[e].p99Ms).toBeGreaterThanOrEqual(routes[e].p50Ms);
    }
    expect(r.stdout).toMatch(/^overall\s+\d+\s+0\s/m);
    expect(r.stdout).toContain('PASS');
  });

  test('references built from other weights (--seed 2 against a seed-1 server) report wrong results and exit 1', async () => {
    const r = await runLoadtest(['--clients', '2', '--requests', '40', '--check', '1', '--seed', '2']);
    expect(r.code).toBe(1);
    expect(r.report.errors).toBe(0);
    expect(r.report.wrongResults).toBeGreaterThan(0);
    const ops = new Set(r.report.wrong.map((w: { op: string }) => w.op));
    // Attention has no held weights, so only SpMM and delta can (and must) disagree.
    expect(ops.has('attention')).toBe(false);
    expect([...ops].some((o) => o === 'spmm' || o === 'delta')).toBe(true);
    expect(r.stdout).toContain('FAIL');
  });
});

describe('request validation and limits (server child process)', () => {
  let s: Server;
  // 1.5 MB cap on the context: startup needs 1.3 MB (the dense W while its block-CSR copy is built), the held
  // weights then take 0.79 MB; small requests fit, a 3 MB one does not.
  beforeAll(async () => {
    s = await startServer(['--body-limit', String(256 * 1024), '--max-sessions', '3', '--session-idle-ms', '400', '--max-device-bytes', '1500000']);
  });
  afterAll(() => stopServer(s));

  const attention = (over: Record<string, unknown> = {}) => {
    const [H, N, D] = (over.shape as [number, number, number] | undefined) ?? [2, 64, 8];
    const Hk = (over.kvHeads as number | undefined) ?? H;
    return { q: new Array(H * N * D).fill(0.1), k: new Array(Hk * N * D).fill(0.2), v: new Array(Hk * N * D).fill(0.3), shape: [H, N, D], ...over };
  };

  test('a valid attention request answers 200 with the output and its shape', async () => {
    const r = await post(`${s.url}/attention`, attention({ layout: { kind: 'sliding', windowBlocks: 1, sinkBlocks: 0 } }));
    expect(r.status).toBe(200);
    expect(r.json.shape).toEqual([2, 64, 8]);
    // Constant values: softmax weights sum to 1, so every output equals v's value (float32 of 0.3).
    expect(r.json.out).toHaveLength(2 * 64 * 8);
    for (const x of r.json.out) expect(x).toBeCloseTo(0.3, 6);
  });

  test('wrong shapes answer 400 naming the field', async () => {
    let r = await post(`${s.url}/attention`, { ...attention(), q: new Array(100).fill(0) });
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/body\.q has 100 values but shape \[2, 64, 8\] needs 1024/);
    r = await post(`${s.url}/attention`, attention({ kvHeads: 1, k: new Array(2 * 64 * 8).fill(0) }));
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/body\.k has 1024 values but kvHeads 1/);
    r = await post(`${s.url}/attention`, { ...attention(), shape: [2, 64] });
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/body\/shape/);
    r = await post(`${s.url}/spmm`, { rows: 2, x: new Array(512).fill(1) });
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/body\.x has 512 values but rows 2 x K 512 needs 1024/);
    const sess = await request(`${s.url}/delta/sessions`, 'POST');
    r = await post(`${s.url}/delta/${sess.json.id}/step`, { x: new Array(511).fill(0) });
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/body\/x must NOT have fewer than 512 items/);
    expect((await request(`${s.url}/delta/${sess.json.id}`, 'DELETE')).status).toBe(204);
  });

  test("the library's own TypeError / RangeError answer 400 with the library's message", async () => {
    // 3 query heads cannot share 2 KV heads: the op's ShapeError (a RangeError).
    let r = await post(`${s.url}/attention`, attention({ shape: [3, 64, 8], kvHeads: 2 }));
    expect(r.status).toBe(400);
    expect(r.json.code).toBe('ERR_SHAPE');
    expect(r.json.message).toMatch(/Expected q's heads \(3\) to be a multiple of k's heads \(2\)/);
    // A sliding window layout is causal: asking for non-causal attention with it is the op's RangeError.
    r = await post(`${s.url}/attention`, attention({ causal: false, layout: { kind: 'sliding', windowBlocks: 2 } }));
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/Expected options\.causal to be true/);
  });

  test('non-finite values, wrong types and unknown fields answer 400', async () => {
    const x = new Array(512).fill(0.5);
    // JSON has no NaN / Infinity, but 1e999 parses to Infinity and 1e39 overflows float32.
    const raw = (v: string) => `{"rows":1,"x":[${[v, ...x.slice(1)].join(',')}]}`;
    let r = await request(`${s.url}/spmm`, 'POST', raw('1e999'));
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/body\/x\/0 must be number/);
    r = await request(`${s.url}/spmm`, 'POST', raw('-1e39'));
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/body\/x\/0 must be >=/);
    r = await request(`${s.url}/spmm`, 'POST', raw('"0.5"'));
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/body\/x\/0 must be number/);
    r = await post(`${s.url}/spmm`, { rows: '1', x }); // no coercion of strings to numbers
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/body\/rows must be integer/);
    r = await post(`${s.url}/spmm`, { rows: 1, x, activation: 'relu' });
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/must NOT have additional properties/);
    r = await post(`${s.url}/attention`, attention({ causal: 'yes' }));
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/body\/causal must be boolean/);
    r = await request(`${s.url}/spmm`, 'POST', '{"rows":1,"x":[1,');
    expect(r.status).toBe(400);
  });

  test('a body over the limit answers 413', async () => {
    const big = JSON.stringify({ rows: 64, x: new Array(64 * 512).fill(0.123456) });
    expect(big.length).toBeGreaterThan(256 * 1024);
    const r = await request(`${s.url}/spmm`, 'POST', big);
    expect(r.status).toBe(413);
  });

  test('unknown sessions answer 404; the session cap answers 429; idle sessions expire', async () => {
    const x = new Array(512).fill(0.25);
    expect((await post(`${s.url}/delta/not-a-session/step`, { x })).status).toBe(404);
    expect((await request(`${s.url}/delta/not-a-session`, 'DELETE')).status).toBe(404);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await request(`${s.url}/delta/sessions`, 'POST');
      expect(r.status).toBe(201);
      ids.push(r.json.id);
    }
    const over = await request(`${s.url}/delta/sessions`, 'POST');
    expect(over.status).toBe(429);
    // A session in use stays open; the two left idle for longer than 400 ms expire.
    const t0 = Date.now();
    while (Date.now() - t0 < 900) {
      const r = await post(`${s.url}/delta/${ids[0]}/step`, { x });
      expect(r.status).toBe(200);
      await new Promise((res) => setTimeout(res, 100));
    }
    expect((await post(`${s.url}/delta/${ids[1]}/step`, { x })).status).toBe(404);
    expect((await request(`${s.url}/delta/${ids[2]}`, 'DELETE')).status).toBe(404);
    const m = await request(`${s.url}/metrics`, 'GET');
    expect(m.json.openSessions).toBe(1);
    expect((await request(`${s.url}/delta/${ids[0]}`, 'DELETE')).status).toBe(204);
    expect((await request(`${s.url}/delta/${ids[0]}`, 'DELETE')).status).toBe(404);
  });

  test('beyond the memory cap a request answers 503 (ERR_OUT_OF_MEMORY) and the server keeps working', async () => {
    // 3 x 4 x 1024 x 64 float32 = 3 MB of inputs against a 1.5 MB cap (body limit aside: the values are short).
    const [H, N, D] = [4, 1024, 64];
    const body = `{"shape":[${H},${N},${D}],"q":[${'0,'.repeat(H * N * D - 1)}0],"k":[${'0,'.repeat(H * N * D - 1)}0],"v":[${'0,'.repeat(H * N * D - 1)}0]}`;
    expect(body.length).toBeLessThan(16 << 20);
    const big = await startServer(['--max-device-bytes', '1500000']);
    try {
      const before = (await request(`${big.url}/metrics?sync=1`, 'GET')).json.memory;
      const r = await request(`${big.url}/attention`, 'POST', body);
      expect(r.status).toBe(503);
      expect(r.json.code).toBe('ERR_OUT_OF_MEMORY');
      const ok = await post(`${big.url}/spmm`, { rows: 1, x: new Array(512).fill(1) });
      expect(ok.status).toBe(200);
      const m = await request(`${big.url}/metrics?sync=1`, 'GET');
      expect(m.json.memory.tensors).toBe(before.tensors);
      expect(m.json.memory.hostBytes).toBe(before.hostBytes);
      expect(m.json.routes['POST /attention'].serverErrors).toBe(1);
    } finally {
      await stopServer(big);
    }
  });

  test('metrics count requests and errors per route, and memory is back to the weights only', async () => {
    const m = await request(`${s.url}/metrics?sync=1`, 'GET');
    expect(m.status).toBe(200);
    const routes = m.json.routes;
    expect(routes['POST /attention'].clientErrors).toBeGreaterThanOrEqual(5);
    expect(routes['POST /attention'].status['200']).toBeGreaterThanOrEqual(1);
    expect(routes['POST /spmm'].status['413']).toBe(1);
    expect(routes['POST /delta/:id/step'].status['404']).toBeGreaterThanOrEqual(2);
    expect(routes['POST /delta/sessions'].status['429']).toBe(1);
    expect(m.json.openSessions).toBe(0);
    // The SpMM matrix (4 arrays) and the delta layer (transposed W, bias): nothing a request created.
    expect(m.json.memory.tensors).toBe(6);
  });
});

describe('graceful shutdown', () => {
  test('SIGTERM with a request in flight: the request completes, sessions, weights and context are freed, exit 0', async () => {
    const s = await startServer([]);
    try {
      const sess = await request(`${s.url}/delta/sessions`, 'POST');
      expect(sess.status).toBe(201);
      // A request that keeps the server busy for a while (parse ~5 MB of JSON, attention over 1024 tokens).
      const [H, N, D] = [4, 1024, 64];
      const vals = (n: number, off: number) => Array.from({ length: n }, (_, i) => (((i * 7919 + off) % 2001) - 1000) / 1000);
      const q = vals(H * N * D, 1);
      const k = vals(H * N * D, 2);
      const v = vals(H * N * D, 3);
      const body = JSON.stringify({ shape: [H, N, D], q, k, v, causal: true });
      let responseEnd = 0;
      const inFlight = new Promise<Reply>((resolve, reject) => {
        const u = new URL(`${s.url}/attention`);
        // A keep-alive connection: the server must close it after this response instead of holding the
        // shutdown until the connection's idle timeout.
        const agent = new http.Agent({ keepAlive: true });
        const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'keep-alive' };
        const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers, agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            responseEnd = Date.now();
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({ status: res.statusCode ?? 0, body: text, json: JSON.parse(text) });
          });
        });
        req.on('error', reject);
        // The signal goes out once the whole body is on the wire: the server is then parsing or computing it.
        req.end(body, () => setTimeout(() => s.proc.kill('SIGTERM'), 5));
      });
      const r = await inFlight;
      const exit = await s.exited;
      expect(exit).toEqual({ code: 0, signal: null });
      // Prompt: no waiting on the idle keep-alive connection (Node's default keep-alive timeout is 5 s).
      expect(Date.now() - responseEnd).toBeLessThan(2000);
      const shutdown = s.events.find((e) => e.event === 'shutdown');
      expect(shutdown).toBeDefined();
      expect(shutdown!.signal).toBe('SIGTERM');
      expect(shutdown!.inFlight).toBeGreaterThanOrEqual(1); // the attention request was in flight
      expect(shutdown!.openSessions).toBe(1);
      // The in-flight request completed with its full, correct result.
      expect(r.status).toBe(200);
      expect(r.json.shape).toEqual([H, N, D]);
      expect(r.json.out).toHaveLength(H * N * D);
      for (const [h, i] of [[0, 0], [1, 517], [3, 1023]] as const) {
        // float64 reference of a few rows (causal, GQA-free: head h reads k/v head h)
        const scale = 1 / Math.sqrt(D);
        const sc: number[] = [];
        for (let j = 0; j <= i; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += Math.fround(q[(h * N + i) * D + d]!) * Math.fround(k[(h * N + j) * D + d]!);
          sc.push(dot * scale);
        }
        const mx = Math.max(...sc);
        const den = sc.reduce((acc, x) => acc + Math.exp(x - mx), 0);
        for (let d = 0; d < D; d++) {
          let o = 0;
          for (let j = 0; j <= i; j++) o += (Math.exp(sc[j]! - mx) / den) * Math.fround(v[(h * N + j) * D + d]!);
          expect(Math.abs(r.json.out[(h * N + i) * D + d] - o)).toBeLessThan(1e-5);
        }
      }
      // After the in-flight work, everything the service owned was freed before the context went.
      const closed = s.events.find((e) => e.event === 'closed') as { contextDisposed: boolean; memoryBeforeContextDispose: { tensors: number; hostBytes: number } };
      expect(closed).toBeDefined();
      expect(closed.contextDisposed).toBe(true);
      expect(closed.memoryBeforeContextDispose.tensors).toBe(0);
      expect(closed.memoryBeforeContextDispose.hostBytes).toBe(0);
      // And nothing listens any more.
      await expect(request(`${s.url}/health`, 'GET')).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      await stopServer(s);
    }
  });
});
