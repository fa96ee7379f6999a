#!/usr/bin/env node
// Runs the compiled test files (dist/test/**/*.test.js) with node:test, one file at a time, then prints a table of
// each file's wall time. Node 20's --test takes no globs, and given a folder it would also run the helpers and
// fixtures as tests.
//
// Usage: node scripts/test.mjs [--skip TAG[,TAG...]] [name-fragment ...]
//   name-fragment   only test files whose name contains one of them
//   --skip TAGS     leave out the files tagged with any of them (also $VGGFACE_TEST_SKIP); a file's tags are on a
//                   line `// @tags: a, b` in its header. Tags: full-size (the 550 MB-class model), browser
//                   (headless Chromium), postgres (a real PostgreSQL). CI runs every file.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const TAGS = ['full-size', 'browser', 'postgres'];
const root = new URL('../dist/test/', import.meta.url).pathname;
const args = process.argv.slice(2);
const skip = new Set((process.env.VGGFACE_TEST_SKIP ?? '').split(',').filter(Boolean));
const filters = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--skip') {
    if (args[i + 1] === undefined) fail('--skip: expected a comma-separated list of tags');
    for (const t of args[++i].split(',').filter(Boolean)) skip.add(t);
  } else filters.push(args[i]);
}
const unknown = [...skip].filter((t) => !TAGS.includes(t));
if (unknown.length > 0) fail(`--skip: expected tags among ${TAGS.join(', ')} but received ${unknown.join(', ')}`);

/** The tags on a `// @tags: ...` line near the top of a compiled test file. */
const tagsOf = (file) => {
  const m = /^\/\/ @tags: (.+)$/m.exec(readFileSync(file, 'utf8').slice(0, 4000));
  return m ? m[1].split(',').map((t) => t.trim()) : [];
};
const matching = readdirSync(root, { recursive: true })
  .map(String)
  .filter((f) => f.endsWith('.test.js'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort()
  .map((f) => join(root, f));
const files = matching.filter((f) => !tagsOf(f).some((t) => skip.has(t)));
if (files.length === 0)
  fail(`no test files match ${filters.join(', ') || '(all)'}${skip.size ? ` without ${[...skip]}` : ''}`);
if (files.length < matching.length) {
  console.log(`skipping ${matching.length - files.length} test file(s) tagged ${[...skip].join(', ')}`);
}

const dir = mkdtempSync(join(tmpdir(), 'vggface-test-timing-'));
const timing = join(dir, 'timing.jsonl');
const reporter = new URL('./test-timing-reporter.mjs', import.meta.url).pathname;
const r = spawnSync(
  process.execPath,
  [
    '--test',
    '--test-concurrency=1',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    `--test-reporter=${reporter}`,
    `--test-reporter-destination=${timing}`,
    ...files,
  ],
  { stdio: 'inherit' },
);
printTiming();
rmSync(dir, { recursive: true, force: true });
process.exit(r.status ?? 1);

function printTiming() {
  let rows;
  try {
    rows = readFileSync(timing, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  } catch (err) {
    console.log(`(no timing table: ${err.message})`);
    return;
  }
  rows.sort((a, b) => b.ms - a.ms);
  const total = rows.reduce((s, x) => s + x.ms, 0);
  const width = Math.max(4, ...rows.map((x) => relative(root, x.file).length));
  console.log(`\n${'file'.padEnd(width)}  ${'s'.padStart(7)}  share  passed  failed  skipped`);
  for (const x of rows) {
    const name = relative(root, x.file).padEnd(width);
    const share = `${((100 * x.ms) / total).toFixed(1)}%`.padStart(5);
    const counts = `${String(x.passed).padStart(6)}  ${String(x.failed).padStart(6)}  ${String(x.skipped).padStart(7)}`;
    console.log(`${name}  ${(x.ms / 1000).toFixed(1).padStart(7)}  ${share}  ${counts}`);
  }
  console.log(`${'total'.padEnd(width)}  ${(total / 1000).toFixed(1).padStart(7)}`);
}

function fail(message) {
  console.error(message);
  process.exit(2);
}
