// Renders the benchmark JSON files of one run (bench-<op>.json, written by `sparse-kernels bench --op <op>
// --json ...`) as markdown tables with the machine, date and commit they were measured on; peers are
// columns of the same rows because every bench runs its peers in the same job.
//   node bench/summarize.mjs <dir with bench-*.json> [more dirs or files...]
import * as fs from 'node:fs';
import * as path from 'node:path';

const inputs = process.argv.slice(2);
if (inputs.length === 0) {
  console.error('usage: node bench/summarize.mjs <dir|file.json>...');
  process.exit(2);
}
const files = inputs.flatMap((p) =>
  fs.statSync(p).isDirectory()
    ? fs.readdirSync(p).filter((f) => /^bench-.*\.json$/.test(f)).sort().map((f) => path.join(p, f))
    : [p],
);
const cell = (v) => {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a >= 100 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : a >= 0.01 ? v.toFixed(3) : v.toExponential(2);
  }
  return String(v).replace(/\|/g, '\\|');
};
for (const file of files) {
  const report = JSON.parse(fs.readFileSync(file, 'utf8'));
  const m = report.machine ?? {};
  const rows = report.rows ?? [];
  console.log(`### ${report.title ?? path.basename(file)}`);
  console.log(`${m.device ?? '?'} (${m.backend ?? '?'}), ${m.date ?? '?'}, commit ${m.commit ?? '?'}, Node ${m.node ?? '?'}\n`);
  if (rows.length === 0) {
    console.log('(no rows)\n');
    continue;
  }
  const cols = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  console.log(`| ${cols.join(' | ')} |`);
  console.log(`| ${cols.map(() => '---').join(' | ')} |`);
  for (const r of rows) console.log(`| ${cols.map((c) => cell(r[c])).join(' | ')} |`);
  console.log('');
}
