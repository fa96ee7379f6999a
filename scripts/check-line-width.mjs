#!/usr/bin/env node
// Fails when a line is longer than 120 columns in the git-tracked *.ts, *.js, *.mjs, *.html and *.css files under
// src/, test/, bench/, scripts/ and web/. Biome's formatter keeps code within 120 columns but does not break string
// literals or comments: this catches those. `npm run lint` runs it after `biome check`.
//
// A line that cannot be shortened (a regex literal, a long URL) is allowed by a marker comment saying why, either
// at the end of the line or alone on the line before it:
//     // line-width: <reason>
// In HTML and CSS the marker is inside a comment of the language (<!-- line-width: ... -->, /* line-width: ... */).
// Columns are counted in characters (UTF-16 code units), as Biome's lineWidth counts them.
//
// Usage: node scripts/check-line-width.mjs [files...]   (no arguments: every file described above)
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const MAX = 120;
const DIRS = ['src/', 'test/', 'bench/', 'scripts/', 'web/'];
const EXTENSIONS = /\.(ts|js|mjs|html|css)$/;
const MARKER = /line-width:\s*\S/;
const MARKER_LINE = /^\s*(\/\/|\/\*|<!--)\s*line-width:\s*\S/;

function trackedFiles() {
  const out = execFileSync('git', ['ls-files', '-z', '--', ...DIRS], { encoding: 'utf8' });
  return out.split('\0').filter((f) => f !== '' && EXTENSIONS.test(f));
}

const files = process.argv.length > 2 ? process.argv.slice(2) : trackedFiles();
const long = [];
for (const file of files) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT') continue; // deleted in the work tree, not yet in the index
    throw err;
  }
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const columns = lines[i].length;
    if (columns <= MAX) continue;
    if (MARKER.test(lines[i]) || (i > 0 && MARKER_LINE.test(lines[i - 1]))) continue;
    long.push(`${file}:${i + 1} (${columns} columns)`);
  }
}
if (long.length > 0) {
  process.stderr.write(
    `${long.join('\n')}\n${long.length} line${long.length === 1 ? '' : 's'} over ${MAX} columns ` +
      '(shorten them, or mark one that cannot be with a "// line-width: <reason>" comment)\n',
  );
  process.exit(1);
}
