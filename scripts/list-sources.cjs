// Prints the C++ sources of the CPU-only build for binding.gyp ("<!@(node scripts/list-sources.cjs)"),
// mirroring the CMake globs so the two builds cannot drift apart. Never lists cuda/.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const flat = ['src/core', 'src/runtime', 'src/ops', 'src/bindings'];
const recursive = ['src/cpu'];

function list(dir, deep) {
  const abs = path.join(root, dir);
  if (!fs.existsSync(abs)) return [];
  const out = [];
  for (const entry of fs.readdirSync(abs, { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) {
      if (deep) out.push(...list(rel, true));
    } else if (entry.name.endsWith('.cc')) {
      out.push(rel);
    }
  }
  return out.sort();
}

const files = [...flat.flatMap((d) => list(d, false)), ...recursive.flatMap((d) => list(d, true))];
process.stdout.write(files.join('\n') + '\n');
