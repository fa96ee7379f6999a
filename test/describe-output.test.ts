/**
 * Issue 5, part 3: describe over many files writes JSON lines or a float32 matrix with an index, and a stopped run
 * resumes without writing any image twice.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseNpyHeader } from '../src/output/npy.js';
import { CLI, FACES_DIR, GOLDEN_DIR, jsonLines, ROOT, runCli, tempDir } from './helpers.js';
import { YUNET_MODEL } from './fixtures/faces.js';

const WEIGHTS = join(GOLDEN_DIR, 'VGG_FACE.caffemodel');
type Line = { image: string; descriptor?: number[]; face?: unknown; faces?: number };

/** n distinct face photos copied into a folder (distinct paths, real JPEGs of mixed sizes). */
function photoFolder(dir: string, n: number): string[] {
  const src = readdirSync(FACES_DIR)
    .filter((f) => f.endsWith('.jpg'))
    .sort()
    .slice(0, n);
  mkdirSync(join(dir, 'photos'), { recursive: true });
  return src.map((f) => {
    copyFileSync(join(FACES_DIR, f), join(dir, 'photos', f));
    return join(dir, 'photos', f);
  });
}

function readMatrix(path: string, columns: number, npy: boolean): Float32Array {
  const bytes = readFileSync(path);
  const start = npy ? parseNpyHeader(bytes)!.headerBytes : 0;
  const copy = new Uint8Array(bytes.subarray(start));
  assert.equal(copy.length % (columns * 4), 0);
  return new Float32Array(copy.buffer);
}

function indexLines(path: string): { image: string; rows: [number, number]; faces?: unknown[] }[] {
  return jsonLines<{ image: string; rows: [number, number]; faces?: unknown[] }>(readFileSync(path, 'utf8')).slice(1);
}

test(
  '-o FILE.jsonl writes what stdout shows; .npy and ' + '.f32 write the same vectors as a matrix with an index',
  async (t) => {
    const dir = tempDir(t);
    const env = { VGGFACE_CACHE: join(dir, 'cache') };
    const base = ['describe', '--detector', 'none', '-w', WEIGHTS, GOLDEN_DIR];
    const stdout = await runCli(base, { env });
    assert.equal(stdout.code, 0, stdout.stderr);
    const expected = jsonLines<Line>(stdout.stdout);
    assert.equal(expected.length, 4, 'the folder holds the four golden PNGs');

    const jsonl = join(dir, 'out.jsonl');
    assert.equal((await runCli([...base, '-o', jsonl], { env })).code, 0);
    assert.equal(readFileSync(jsonl, 'utf8'), stdout.stdout);

    for (const ext of ['npy', 'f32']) {
      const out = join(dir, `out.${ext}`);
      const r = await runCli([...base, '-o', out], { env });
      assert.equal(r.code, 0, r.stderr);
      const m = readMatrix(out, 32, ext === 'npy');
      if (ext === 'npy')
        assert.deepEqual(parseNpyHeader(readFileSync(out)), { rows: 4, columns: 32, headerBytes: 128 });
      const index = indexLines(`${out}.index.jsonl`);
      assert.deepEqual(
        index.map((l) => l.image),
        expected.map((l) => l.image),
      );
      index.forEach((l, i) => {
        assert.deepEqual(l.rows, [i, i + 1]);
        assert.deepEqual(
          [...m.subarray(i * 32, (i + 1) * 32)].map(Math.fround),
          expected[i].descriptor!.map(Math.fround),
          `${ext} row ${i}`,
        );
      });
    }
  },
);

test("with detection, the index maps each photo to its faces' rows, and a photo with no face to none", async (t) => {
  const dir = tempDir(t);
  const blank = join(dir, 'blank.png');
  const sharp = (await import('sharp')).default;
  await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 200, g: 180, b: 160 } } })
    .png()
    .toFile(blank);
  const out = join(dir, 'faces.f32');
  const r = await runCli(
    ['describe', '-w', WEIGHTS, join(FACES_DIR, 'couple.jpg'), blank, join(FACES_DIR, 'img1.jpg'), '-o', out],
    {
      env: { VGGFACE_CACHE: join(dir, 'cache'), VGGFACE_DETECTOR_MODEL: YUNET_MODEL },
    },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /blank\.png: no face found/);
  const index = indexLines(`${out}.index.jsonl`);
  assert.deepEqual(
    index.map((l) => [l.rows, l.faces?.length]),
    [
      [[0, 2], 2],
      [[2, 2], 0],
      [[2, 3], 1],
    ],
  );
  assert.equal(statSync(out).size, 3 * 32 * 4);
});

/** A complete run's output, for comparison. */
async function referenceRun(dir: string, photos: string[], out: string): Promise<void> {
  const r = await runCli(['describe', '--detector', 'none', '-w', WEIGHTS, ...photos, '-o', out], {
    env: { VGGFACE_CACHE: join(dir, 'cache') },
  });
  assert.equal(r.code, 0, r.stderr);
}

test(
  '--resume on JSON lines cut mid-line: every image ' + 'exactly once, same vectors as an uninterrupted run',
  async (t) => {
    const dir = tempDir(t);
    const photos = photoFolder(dir, 12);
    const full = join(dir, 'full.jsonl');
    await referenceRun(dir, photos, full);
    const complete = readFileSync(full);
    // What a killed run leaves: a prefix of the output, here cut in the middle of the 8th line.
    const lineEnds = [...complete.entries()].filter(([, b]) => b === 0x0a).map(([i]) => i);
    const cut = lineEnds[6] + 1 + Math.floor((lineEnds[7] - lineEnds[6]) / 2);
    const partial = join(dir, 'partial.jsonl');
    writeFileSync(partial, complete.subarray(0, cut));
    const again = await runCli(['describe', '--detector', 'none', '-w', WEIGHTS, ...photos, '-o', partial], {
      env: { VGGFACE_CACHE: join(dir, 'cache') },
    });
    assert.equal(again.code, 2, 'an existing output without --resume is refused');
    assert.match(again.stderr, /partial\.jsonl exists: pass --resume to continue it, or --overwrite to start again/);
    const r = await runCli(['describe', '--detector', 'none', '-w', WEIGHTS, ...photos, '-o', partial, '--resume'], {
      env: { VGGFACE_CACHE: join(dir, 'cache') },
    });
    assert.equal(r.code, 0, r.stderr);
    // 7 complete lines: the 7th image may have been incomplete, so 6 are kept and 6 described.
    assert.match(r.stderr, /resuming .*partial\.jsonl: 6 images already done, 6 to go/);
    assert.equal(readFileSync(partial, 'utf8'), complete.toString('utf8'));
  },
);

test('--resume on a matrix after a real kill: each image once, rows identical to an uninterrupted run', async (t) => {
  const dir = tempDir(t);
  const photos = photoFolder(dir, 40);
  const full = join(dir, 'full.npy');
  await referenceRun(dir, photos, full);
  const list = join(dir, 'list.txt');
  writeFileSync(list, photos.join('\n') + '\n');
  const out = join(dir, 'run.npy');
  const args = [CLI, 'describe', '--detector', 'none', '-w', WEIGHTS, '--list', list, '--batch', '2', '-o', out];
  // Start, wait until some rows are indexed, kill without warning.
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { ...process.env, VGGFACE_CACHE: join(dir, 'cache') },
      stdio: 'ignore',
    });
    const timer = setInterval(() => {
      let lines = 0;
      try {
        lines = readFileSync(`${out}.index.jsonl`, 'utf8').split('\n').length - 2;
      } catch {
        return;
      }
      if (lines >= 5) {
        clearInterval(timer);
        child.kill('SIGKILL');
      }
    }, 5);
    child.on('exit', (code, signal) => {
      clearInterval(timer);
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`the run finished (code ${code}) before it could be killed`));
    });
  });
  const before = indexLines(`${out}.index.jsonl`).length;
  assert.ok(before >= 5 && before < 40, `killed after ${before} images`);
  const r = await runCli(
    ['describe', '--detector', 'none', '-w', WEIGHTS, '--list', list, '--batch', '2', '-o', out, '--resume'],
    { env: { VGGFACE_CACHE: join(dir, 'cache') } },
  );
  assert.equal(r.code, 0, r.stderr);
  const index = indexLines(`${out}.index.jsonl`);
  assert.deepEqual(
    index.map((l) => l.image),
    photos,
    'every image exactly once, in order',
  );
  index.forEach((l, i) => assert.deepEqual(l.rows, [i, i + 1]));
  assert.deepEqual(parseNpyHeader(readFileSync(out)), { rows: 40, columns: 32, headerBytes: 128 });
  assert.deepEqual(readMatrix(out, 32, true), readMatrix(full, 32, true));
});

test('resume refuses an output written with other settings; bad output flags are usage errors', async (t) => {
  const dir = tempDir(t);
  const env = { VGGFACE_CACHE: join(dir, 'cache') };
  const photos = photoFolder(dir, 2);
  const out = join(dir, 'x.f32');
  await referenceRun(dir, photos, out);
  truncateSync(out, 32 * 4);
  const r = await runCli(
    ['describe', '--detector', 'none', '-w', WEIGHTS, '--layer', 'fc8', ...photos, '-o', out, '--resume'],
    { env },
  );
  assert.equal(r.code, 2);
  assert.match(r.stderr, /x\.f32\.index\.jsonl: cannot resume: it was written with dimension 32, this run has 10/);
  const cases: [string[], RegExp][] = [
    [
      ['-o', join(dir, 'y.txt')],
      /y\.txt: cannot tell the output format from the extension; use \.jsonl, \.npy or \.f32, or --output-format/,
    ],
    [['--resume'], /--resume needs --output FILE/],
    [['-o', join(dir, 'z.npy'), '--resume', '--overwrite'], /--resume and --overwrite: choose one/],
    [
      ['-o', join(dir, 'z.npy'), '--output-format', 'csv'],
      /Expected one of jsonl, npy, f32 for --output-format but received "csv"/,
    ],
  ];
  for (const [flags, message] of cases) {
    const res = await runCli(['describe', '--detector', 'none', '-w', WEIGHTS, ...photos, ...flags], { env });
    assert.equal(res.code, 2, flags.join(' '));
    assert.match(res.stderr, message);
  }
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  const none = await runCli(['describe', '--detector', 'none', '-w', WEIGHTS, empty], { env });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no images found in .*empty/);
});

test('--list - reads paths from stdin; folders are walked recursively for image files', async (t) => {
  const dir = tempDir(t);
  const photos = photoFolder(dir, 3);
  mkdirSync(join(dir, 'photos', 'sub'));
  copyFileSync(join(GOLDEN_DIR, 'img2.png'), join(dir, 'photos', 'sub', 'img2.png'));
  writeFileSync(join(dir, 'photos', 'notes.txt'), 'not an image');
  const env = { VGGFACE_CACHE: join(dir, 'cache') };
  const r = await runCli(['describe', '--detector', 'none', '-w', WEIGHTS, '--list', '-'], {
    env,
    input: `# three photos\n${photos.join('\n')}\n\n`,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    jsonLines<Line>(r.stdout).map((l) => l.image),
    photos,
  );
  const walked = await runCli(['describe', '--detector', 'none', '-w', WEIGHTS, join(dir, 'photos')], { env });
  assert.equal(walked.code, 0, walked.stderr);
  assert.deepEqual(
    jsonLines<Line>(walked.stdout).map((l) => l.image),
    [...photos, join(dir, 'photos', 'sub', 'img2.png')],
  );
});
