import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';

import { Tensor } from '../../lib/tensor';
import { testContexts } from '../helpers/gpu';

/**
 * Samples event-loop lag with a 1 ms timer chain: lag = how late each timer fires. Returns percentiles.
 * libuv's timers have 1 ms granularity, so even an idle loop shows up to ~1 ms; the test therefore
 * compares the lag while our ops run against the same sampler on the idle loop just before.
 */
function sampleLag(): { stop: () => { p50: number; p99: number; max: number; samples: number } } {
  const lags: number[] = [];
  let running = true;
  let expected = performance.now() + 1;
  const tick = () => {
    const now = performance.now();
    lags.push(Math.max(0, now - expected));
    expected = now + 1;
    if (running) setTimeout(tick, 1);
  };
  setTimeout(tick, 1);
  return {
    stop: () => {
      running = false;
      const s = lags.slice().sort((a, b) => a - b);
      const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
      return { p50: q(0.5), p99: q(0.99), max: s[s.length - 1] ?? 0, samples: s.length };
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The control: a separate Node process running the same 1 ms timer chain during the same window. It shares
 * the machine (the other test files jest runs in parallel, our compute threads) but not our event loop, so
 * scheduler noise shows in both and only work on our loop's thread shows in ours alone. CI runs two test
 * files on two cores, where the p99 of any loop is a few ms whatever it does.
 */
function startCanary(): { stop: () => Promise<{ p50: number; p99: number; max: number; samples: number }> } {
  const src = `
    const lags = []; let expected = performance.now() + 1;
    const tick = () => { const now = performance.now(); lags.push(Math.max(0, now - expected)); expected = now + 1; t = setTimeout(tick, 1); };
    let t = setTimeout(tick, 1);
    process.stdin.on('data', () => {
      clearTimeout(t);
      const s = lags.slice().sort((a, b) => a - b);
      const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
      process.stdout.write(JSON.stringify({ p50: q(0.5), p99: q(0.99), max: s[s.length - 1] ?? 0, samples: s.length }));
      process.exit(0);
    });
    process.stdout.write('ready\\n');`;
  const child = spawn(process.execPath, ['-e', src], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return {
    stop: async () => {
      if (child.exitCode === null) child.stdin.write('stop\n');
      await exited;
      try {
        return JSON.parse(out.slice(out.indexOf('\n') + 1));
      } catch {
        throw new Error(`the control process failed; its output: ${out}`);
      }
    },
  };
}

// Lag is measured against the OS scheduler: another process (or test file) saturating the cores can delay the
// timer. Retries absorb such interference; a real block of the loop (any JS-thread work in an op) fails every try.
jest.retryTimes(2, { logErrorsBeforeRetry: true });

describe.each(testContexts())('event loop on %s', (_name, getContext) => {
  test('keeps ticking while multi-second work runs (p99 lag within 1 ms of a control loop, loop mostly idle)', async () => {
    const ctx = getContext();
    const s = ctx.createStream();
    const n = 1 << 24;
    const src = Tensor.from(new Float32Array(n).fill(1.25), [n], { stream: s });
    await s.synchronize();

    const idleSampler = sampleLag();
    await sleep(500);
    const idle = idleSampler.stop();

    const canary = startCanary();
    await sleep(200); // the canary's node has started and its chain runs
    const elu0 = performance.eventLoopUtilization();
    const busySampler = sampleLag();
    let busy: ReturnType<ReturnType<typeof sampleLag>['stop']> | undefined;
    const t0 = performance.now();
    const outs: Tensor[] = [];
    let arr: Float32Array;
    try {
      // Real work on the stream (64 MiB conversions on the CPU pool / GPU) plus a 2 s busy task.
      for (let i = 0; i < 4; i++) outs.push(src.cast('bfloat16'), src.cast('float16'));
      s._native!.spinForTesting(2000);
      arr = await outs[outs.length - 1]!.toFloat32Array();
      await s.synchronize();
    } finally {
      busy = busySampler.stop(); // never leave the timer chain running (it would keep the worker alive)
    }
    const elu = performance.eventLoopUtilization(elu0).utilization;
    const control = await canary.stop();
    const elapsed = performance.now() - t0;
    expect(arr![n - 1]).toBe(1.25);
    expect(elapsed).toBeGreaterThan(2000);
    expect(busy!.samples).toBeGreaterThan(elapsed / 3); // the loop kept ticking throughout
    console.log(
      `[eventloop ${ctx.backend}] ${elapsed.toFixed(0)} ms of work, ${busy.samples} timer ticks; lag p50/p99/max ` +
        `${busy!.p50.toFixed(2)}/${busy!.p99.toFixed(2)}/${busy!.max.toFixed(2)} ms (idle loop: ` +
        `${idle.p50.toFixed(2)}/${idle.p99.toFixed(2)}/${idle.max.toFixed(2)} ms; control process in the same ` +
        `window: ${control.p50.toFixed(2)}/${control.p99.toFixed(2)}/${control.max.toFixed(2)} ms); loop utilization ${(elu * 100).toFixed(1)}%`,
    );
    // Our loop's p99 lag is within 1 ms of what the machine gives any loop at that moment (the control
    // process, or the idle loop just before, whichever is worse): the work never runs on the loop's thread.
    expect(busy!.p99).toBeLessThan(Math.max(idle.p99, control.p99) + 1.0);
    // And the loop is mostly waiting: a blocking call of the multi-second work would make this ~100%.
    expect(elu).toBeLessThan(0.5);
    for (const o of outs) o.dispose();
    src.dispose();
    s.dispose();
  });
});
