// ESM variant of dialect.ts; scripts/build-ts.mjs installs its output as dist/esm/native/dialect.js.
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const nativeRequire: NodeRequire = createRequire(import.meta.url);

export function packageRoot(): string {
  return findRoot(path.dirname(fileURLToPath(import.meta.url)));
}

export function findRoot(start: string): string {
  let dir = start;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        if (JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'sparse-kernels') return dir;
      } catch {
        // keep walking up
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve(start, '..', '..');
    dir = parent;
  }
}
