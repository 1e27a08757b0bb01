#!/usr/bin/env node
/**
 * `npx sparse-kernels <command>`:
 *   inspect [--json]                          backend, binary, driver/runtime versions, devices
 *   bench --op <op> [--quick] [--json f] [--out-dir d]   the benchmark matrix of one op on this backend
 *   demo [--out-dir d] [--quick]              realistic workloads for every op, one table, a report folder
 * `--device auto|cuda|cpu` (bench, demo) picks the backend, as SPARSE_KERNELS_DEVICE does. Usage
 * mistakes (unknown command or option, missing value) exit with code 2, failures with 1.
 * Commands load their modules lazily: `inspect` never loads the benchmarks, the demo or their packages.
 */
import { type DeviceOption, DEVICE_OPTIONS, backendInfo, formatBackendInfo } from '../backend.js';
import { BENCHES } from './benches.js';

const USAGE = `usage: sparse-kernels <command> [options]

commands:
  inspect [--json]         print the backend the library would use, why, and what it found
  bench --op <op>          run the benchmark matrix of one op on the current backend
        ops: ${Object.keys(BENCHES).join(' | ')}
        --quick            a smaller matrix
        --json <file>      also write the rows as JSON
        --out-dir <dir>    where to write inputs shared with peer scripts (masks, layouts)
        --device <d>       auto | cuda | cpu (default: auto, or SPARSE_KERNELS_DEVICE)
  demo [--out-dir <dir>] [--quick] [--device <d>]
                           run the three capabilities on realistic synthetic workloads, print one table and
                           write a report folder (default ./sparse-kernels-report: report.json + charts);
                           GPU when there is one, else the CPU
`;

/** A usage mistake: printed with the usage, exit code 2, no stack. */
class UsageError extends Error {}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new UsageError(`${name} needs a value`);
  return v;
}

/** Rejects options a command does not know (a typo must not silently run the default). */
function checkArgs(command: string, argv: string[], valued: string[], bare: string[]): void {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (valued.includes(a)) i++;
    else if (!bare.includes(a)) throw new UsageError(`unknown argument for ${command}: ${a}`);
  }
}

function deviceFlag(argv: string[]): DeviceOption | undefined {
  const d = flag(argv, '--device');
  if (d !== undefined && !(DEVICE_OPTIONS as readonly string[]).includes(d)) throw new UsageError(`--device must be one of ${DEVICE_OPTIONS.join(', ')}, not ${d}`);
  return d as DeviceOption | undefined;
}

function isModuleNotFound(e: unknown, file: string): boolean {
  const code = (e as { code?: string } | null)?.code;
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((e as Error).message).includes(file.replace(/^\.\//, '').replace(/\.js$/, ''));
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
      checkArgs('bench', rest, ['--op', '--json', '--out-dir', '--device'], ['--quick']);
      const op = flag(rest, '--op');
      const entry = op === undefined ? undefined : BENCHES[op];
      if (!entry) throw new UsageError(`bench needs --op ${Object.keys(BENCHES).join('|')}${op === undefined ? '' : ` (not ${op})`}`);
      const device = deviceFlag(rest);
      // The bench modules use the default context and report backendInfo(): both follow the variable.
      if (device !== undefined) process.env.SPARSE_KERNELS_DEVICE = device;
      let mod: Record<string, (o: object) => Promise<unknown>>;
      try {
        mod = (await import(entry.module)) as typeof mod;
      } catch (e) {
        if (!isModuleNotFound(e, entry.module)) throw e;
        process.stderr.write(`the ${op} benchmark is not part of this build (${entry.module} is missing)\n`);
        return 1;
      }
      const run = mod[entry.fn];
      if (typeof run !== 'function') throw new Error(`${entry.module} does not export ${entry.fn}`);
      await run({ quick: rest.includes('--quick'), json: flag(rest, '--json'), outDir: flag(rest, '--out-dir') });
      return 0;
    }
    case 'demo': {
      checkArgs('demo', rest, ['--out-dir', '--device'], ['--quick']);
      const device = deviceFlag(rest);
      if (device !== undefined) process.env.SPARSE_KERNELS_DEVICE = device;
      const { runDemo } = await import('./demo.js');
      return runDemo({ outDir: flag(rest, '--out-dir'), quick: rest.includes('--quick'), device });
    }
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return command === undefined ? 1 : 0;
    default:
      throw new UsageError(`unknown command: ${command}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n${USAGE}`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
