#!/usr/bin/env node
/**
 * `npx sparse-kernels <command>`:
 *   inspect              backend, binary, driver/runtime versions, devices (node-llama-cpp `inspect gpu` style)
 */
import { backendInfo, formatBackendInfo } from '../backend.js';

const USAGE = `usage: sparse-kernels <command>

commands:
  inspect     print the backend the library would use, why, and what it found (binary, CUDA, devices)
`;

async function main(argv: string[]): Promise<number> {
  const [command] = argv;
  switch (command) {
    case 'inspect': {
      const info = backendInfo();
      if (argv.includes('--json')) process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
      else process.stdout.write(`${formatBackendInfo(info)}\n`);
      return 0;
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
