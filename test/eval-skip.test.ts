/**
 * eval and calibrate skip a pair whose photo has no face (as verify --pairs does), say so on stderr and count it in
 * the report, text and JSON; --strict stops at the first one instead. Tiny golden model, shared photos, YuNet.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { FACES_DIR, runCli, tempDir } from './helpers.js';
import { TINY_CAFFEMODEL, YUNET_MODEL } from './fixtures/faces.js';

/**
 * 20 pairs of single-person portraits (10 labelled same, 10 different: one of each per fold) and, on lines 3 and 14,
 * two pairs with a plain grey picture, which has no face.
 */
async function pairsWithoutFaces(dir: string): Promise<{ csv: string; blank: string }> {
  const blank = join(dir, 'blank.png');
  await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 128, g: 128, b: 128 } } })
    .png()
    .toFile(blank);
  const rows = Array.from(
    { length: 20 },
    (_, i) =>
      `${join(FACES_DIR, `img${i + 1}.jpg`)},${join(FACES_DIR, `img${i + 2}.jpg`)},${i % 2 === 0 ? 'Yes' : 'No'}`,
  );
  rows.splice(1, 0, `${blank},${join(FACES_DIR, 'img1.jpg')},Yes`);
  rows.splice(12, 0, `${join(FACES_DIR, 'img2.jpg')},${blank},No`);
  const csv = join(dir, 'pairs.csv');
  writeFileSync(csv, ['file_x,file_y,Decision', ...rows].join('\n') + '\n');
  return { csv, blank };
}

const common = (dir: string) => [
  '-w',
  TINY_CAFFEMODEL,
  '--cache-dir',
  join(dir, 'cache'),
  '--detector-model',
  YUNET_MODEL,
];

test('eval: pairs with a photo without a face are skipped, ' +
  'noted on stderr and counted (text and JSON); --strict stops', {
  timeout: 300_000,
}, async (t) => {
  const dir = tempDir(t);
  const { csv, blank } = await pairsWithoutFaces(dir);
  const notes =
    `vggface: ${csv}: line 3: ${blank}: no face found; pair skipped\n` +
    `vggface: ${csv}: line 14: ${blank}: no face found; pair skipped\n`;

  const text = await runCli(['eval', '--pairs', csv, ...common(dir)]);
  assert.equal(text.code, 0, text.stderr);
  assert.equal(text.stderr, notes);
  assert.match(
    text.stdout,
    // line-width: regex
    /^pairs: {13}20 \(10 same, 10 different\), 10 folds\nskipped: {11}2 pairs with a photo without a face \(lines 3, 14\)\naccuracy/m,
  );

  const json = await runCli(['eval', '--pairs', csv, '--json', ...common(dir)]);
  assert.equal(json.code, 0, json.stderr);
  const report = JSON.parse(json.stdout);
  assert.equal(report.pairs, 20);
  assert.equal(report.folds.length, 10);
  assert.equal(report.skippedPairs, 2);
  assert.deepEqual(report.skipped, [
    { line: 3, image: blank, reason: `${blank}: no face found` },
    { line: 14, image: blank, reason: `${blank}: no face found` },
  ]);

  const strict = await runCli(['eval', '--pairs', csv, '--strict', ...common(dir)]);
  assert.equal(strict.code, 1);
  assert.equal(
    strict.stderr,
    `vggface: ${csv}: line 3: ${blank}: no face found (--strict: stopped at the first pair without a face)\n`,
  );
  assert.equal(strict.stdout, '');

  // calibrate evaluates the same way and stores the threshold of the pairs kept.
  const cal = await runCli(['calibrate', '--pairs', csv, '--metric', 'cosine', '--json', ...common(dir)]);
  assert.equal(cal.code, 0, cal.stderr);
  assert.equal(cal.stderr, notes);
  const stored = JSON.parse(cal.stdout);
  assert.equal(stored.metrics[0].skippedPairs, 2);
  assert.equal(stored.metrics[0].bestThreshold, report.bestThreshold);
  const calStrict = await runCli(['calibrate', '--pairs', csv, '--metric', 'cosine', '--strict', ...common(dir)]);
  assert.equal(calStrict.code, 1);
  assert.match(calStrict.stderr, /line 3: .*blank\.png: no face found \(--strict/);
});

test('eval: when every pair has a photo without a face, the error says so', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const { blank } = await pairsWithoutFaces(dir);
  const csv = join(dir, 'none.csv');
  writeFileSync(
    csv,
    `file_x,file_y,Decision\n${blank},${join(FACES_DIR, 'img1.jpg')},Yes\n${join(FACES_DIR, 'img2.jpg')},${blank},No\n`,
  );
  const r = await runCli(['eval', '--pairs', csv, ...common(dir)]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    new RegExp(
      `vggface: ${csv}: no pair left to evaluate: every pair has a photo without a ` +
        'face \\(first: line 2, .*blank\\.png: no face found\\)\\n$',
    ),
  );
});
