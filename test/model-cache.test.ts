/** The conversion cache: a cached model that cannot be used is said to be so, then converted again, and works. */
import assert from 'node:assert/strict';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cachedModelPath, resolveModel } from '../src/model/cache.js';
import { sha256File } from '../src/util/hash.js';
import { assertClose, golden, GOLDEN_DIR, GOLDEN_IMAGES, jsonLines, runCli, tempDir } from './helpers.js';

const WEIGHTS = join(GOLDEN_DIR, 'VGG_FACE.caffemodel');
const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test(
  'a damaged cached model is named with the reason, converted ' + 'again, and the new one gives the golden descriptors',
  async (t) => {
    const cacheDir = tempDir(t);
    const logged: string[] = [];
    const log = (m: string) => logged.push(m);
    const first = await resolveModel({ weights: WEIGHTS, cacheDir, log });
    const cached = cachedModelPath(cacheDir, await sha256File(WEIGHTS), 'caffe', 'fp32');
    assert.deepEqual([first.origin, first.modelPath, logged], ['converted', cached, []]);
    const good = readFileSync(cached);

    // Cut short (a killed writer): the library's log gets one line naming the file and why, then converts again.
    truncateSync(cached, 100);
    const again = await resolveModel({ weights: WEIGHTS, cacheDir, log });
    assert.equal(again.origin, 'converted');
    assert.equal(logged.length, 1, logged.join('\n'));
    assert.match(
      logged[0],
      new RegExp(
        `^${literal(cached)}: cached model unusable \\(truncated ONNX file: field \\d+ at byte \\d+ ` +
          `declares \\d+ bytes, \\d+ remain\\); converting ${literal(WEIGHTS)} again$`,
      ),
    );
    assert.deepEqual(readFileSync(cached), good, 'the conversion again gives the same file');
    assert.equal((await resolveModel({ weights: WEIGHTS, cacheDir, log })).origin, 'cached');
    assert.equal(logged.length, 1, 'a good cache entry is used without a word');

    // Not a model at all, through the CLI: the line is on stderr before the conversion, and the model describes.
    writeFileSync(cached, 'not an onnx file');
    const paths = GOLDEN_IMAGES.map((f) => join(GOLDEN_DIR, f));
    const r = await runCli(['describe', '--detector', 'none', '-w', WEIGHTS, '--cache-dir', cacheDir, ...paths]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.split('\n').filter((l) => l.includes('cached model unusable'));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0],
      new RegExp(
        `^vggface: ${literal(cached)}: cached model unusable \\(not an ONNX model: wire ` +
          `type 6 at byte 0\\); converting ${literal(WEIGHTS)} again$`,
      ),
    );
    const described = jsonLines<{ descriptor: number[] }>(r.stdout);
    assert.equal(described.length, GOLDEN_IMAGES.length);
    GOLDEN_IMAGES.forEach((img, i) => assertClose(described[i].descriptor, golden.images[img].fc7_l2, 1e-4, img));
    assert.deepEqual(readFileSync(cached), good);
    const quiet = await runCli(['describe', '--detector', 'none', '-w', WEIGHTS, '--cache-dir', cacheDir, paths[0]]);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.doesNotMatch(quiet.stderr, /cached model/);
  },
);
