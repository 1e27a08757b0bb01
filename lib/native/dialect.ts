/**
 * The one format-specific piece (CommonJS build and ts-jest): how to `require` a native file and where
 * the package root is. The ESM build replaces this file with dialect.esm.ts (scripts/build-ts.mjs).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const nativeRequire: NodeRequire = require;

export function packageRoot(): string {
  return findRoot(__dirname);
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
