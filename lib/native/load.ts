/**
 * Finds and loads the native addon, trying in order:
 *   1. SPARSE_KERNELS_BINARY (an explicit path to a .node file);
 *   2. node-gyp-build on the package root: build/Release (a local build), then prebuilds/<platform>-<arch>/;
 * and otherwise throws a NativeBindingError listing every attempt and concrete fixes (sharp's help text).
 * Loading never initialises CUDA; the first CUDA context or backendInfo() call does.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isMainThread } from 'node:worker_threads';

import { NativeBindingError } from '../errors.js';
import type { NativeBinding } from './binding.js';
import { nativeRequire, packageRoot } from './dialect.js';

export interface LoadedBinding {
  binding: NativeBinding;
  /** Absolute path of the .node file that loaded. */
  path: string;
  /** Contents of the metadata JSON next to a prebuilt binary, when present. */
  metadata?: Record<string, unknown>;
}

let loaded: LoadedBinding | undefined;

function electronUnpacked(p: string): string {
  return p.replace(`${path.sep}app.asar${path.sep}`, `${path.sep}app.asar.unpacked${path.sep}`);
}

function readMetadata(binaryPath: string): Record<string, unknown> | undefined {
  const meta = path.join(path.dirname(binaryPath), 'sparse-kernels.json');
  if (!fs.existsSync(meta)) return undefined;
  try {
    return JSON.parse(fs.readFileSync(meta, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function resolveGypBuild(root: string): string {
  const gypBuild = nativeRequire('node-gyp-build') as { resolve(dir: string): string };
  return gypBuild.resolve(root);
}

function describeError(e: unknown): string {
  if (e instanceof Error) return e.message.split('\n')[0] ?? e.message;
  return String(e);
}

function helpText(attempts: string[]): string {
  const libc = (() => {
    try {
      const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
      return report?.header?.glibcVersionRuntime ? `glibc ${report.header.glibcVersionRuntime}` : 'non-glibc';
    } catch {
      return 'unknown libc';
    }
  })();
  return [
    'Could not load the sparse-kernels native addon.',
    `Runtime: Node.js ${process.version} (N-API ${process.versions.napi}), ${process.platform}-${process.arch}, ${libc}.`,
    'Tried:',
    ...attempts.map((a) => `  - ${a}`),
    'Possible solutions:',
    '  - Prebuilt binaries ship for linux-x64 (glibc) only. Reinstall without --ignore-scripts is not needed,',
    '    but make sure the installed package contains prebuilds/ (npm ls sparse-kernels; npm pack output).',
    '  - Node.js >= 20.3.0 is required (N-API 9).',
    '  - Build from source: npm i -D cmake-js node-addon-api && npx cmake-js compile -O build',
    '    (CUDA kernels are included when nvcc is found; CPU only: --CDSPARSE_KERNELS_CUDA=OFF),',
    '    or without CMake: npx node-gyp rebuild (CPU only).',
    '  - Point SPARSE_KERNELS_BINARY at a .node file you built elsewhere.',
    '  - Bundlers: mark sparse-kernels as external; Electron: keep the .node file outside app.asar.',
  ].join('\n');
}

/** Loads the addon once per process (per worker thread), or throws NativeBindingError. */
export function loadBinding(): LoadedBinding {
  if (loaded) return loaded;
  const attempts: string[] = [];
  const errors: unknown[] = [];
  const tryLoad = (label: string, file: string): LoadedBinding | undefined => {
    const p = electronUnpacked(path.resolve(file));
    try {
      const binding = nativeRequire(p) as NativeBinding;
      binding.init({ isMainThread });
      return { binding, path: p, metadata: readMetadata(p) };
    } catch (e) {
      attempts.push(`${label}: ${p}: ${describeError(e)}`);
      errors.push(e);
      return undefined;
    }
  };

  const explicit = process.env.SPARSE_KERNELS_BINARY;
  if (explicit) {
    loaded = tryLoad('SPARSE_KERNELS_BINARY', explicit);
    if (!loaded) {
      throw new NativeBindingError(helpText(attempts), { cause: errors[0] });
    }
    return loaded;
  }

  const root = packageRoot();
  let resolved: string | undefined;
  try {
    resolved = resolveGypBuild(root);
  } catch (e) {
    attempts.push(
      `node-gyp-build in ${root} (build/Release, build/Debug, prebuilds/${process.platform}-${process.arch}): ${describeError(e)}`,
    );
    errors.push(e);
  }
  if (resolved) loaded = tryLoad('node-gyp-build', resolved);
  if (!loaded) throw new NativeBindingError(helpText(attempts), { cause: errors[errors.length - 1] });
  return loaded;
}

/** The loaded native module (loads it on first use). */
export function native(): NativeBinding {
  return loadBinding().binding;
}

/**
 * The native module typed as a capability's binding interface (each room declares its own native
 * functions in lib/native/<op>.ts, next to the one description of the core in binding.ts).
 */
export function nativeOps<T>(): NativeBinding & T {
  return loadBinding().binding as NativeBinding & T;
}
