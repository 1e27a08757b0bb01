#!/usr/bin/env node
/**
 * `npx sparse-kernels <command>`:
 *   inspect [--json]                          backend, binary, driver/runtime versions, devices
 *   bench --op <op> [--quick] [--json f] [--out-dir d]   the benchmark matrix of one op on this backend
 *   demo [--out-dir d] [--quick]              realistic workloads for every op, one table, a report folder
 */
import { backendInfo, formatBackendInfo } from '../backend.js';

const USAGE = `usage: sparse-kernels <command> [options]

commands:
  inspect [--json]         print the backend the library would use, why, and what it found
  bench --op <op>          run the benchmark matrix of one op on the current backend
        ops: ${'attention | pbs | spmm | delta'}
        --quick            a smaller matrix
        --json <file>      also write the rows as JSON
        --out-dir <dir>    where to write inputs shared with peer scripts (masks, layouts)
  demo [--out-dir <dir>] [--quick]
                           run the three capabilities on realistic synthetic workloads, print one table and
                           write a report folder (JSON + charts); GPU when there is one, else the CPU
`;

const BENCHES: Record<string, { module: string; fn: string }> = {
  attention: { module: './bench/attention.js', fn: 'runAttentionBench' },
  pbs: { module: './bench/pbs.js', fn: 'runPbsBench' },
  spmm: { module: './bench/spmm.js', fn: 'runSpmmBench' },
  delta: { module: './bench/delta.js', fn: 'runDeltaBench' },
};

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
  return v;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'inspect': {
      const info = backendInfo();
      if (rest.includes('--json')) process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
      else process.stdout.write(`${formatBackendInfo(info)}\n`);
      return 0;
    }
    case 'bench': {
      const op = flag(rest, '--op');
      const entry = op === undefined ? undefined : BENCHES[op];
      if (!entry) {
        process.stderr.write(`bench needs --op ${Object.keys(BENCHES).join('|')}\n`);
        return 1;
      }
      const mod = (await import(entry.module)) as Record<string, (o: object) => Promise<unknown>>;
      const run = mod[entry.fn];
      if (typeof run !== 'function') throw new Error(`${entry.module} does not export ${entry.fn}`);
      await run({ quick: rest.includes('--quick'), json: flag(rest, '--json'), outDir: flag(rest, '--out-dir') });
      return 0;
    }
    case 'demo': {
      const demoModule = './demo.js';
      const mod = (await import(demoModule)) as { runDemo(o: object): Promise<number> };
      return mod.runDemo({ outDir: flag(rest, '--out-dir'), quick: rest.includes('--quick') });
    }
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`unknown command: ${command}\n${USAGE}`);
      return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
