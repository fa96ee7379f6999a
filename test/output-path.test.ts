/**
 * Writers never destroy what is at the output path: every writer (convert, describe -o and its index, faces -o,
 * eval --roc, calibrations, the model and detector caches) refuses its own inputs (by device and inode) and anything
 * that is not a regular file, with nothing written; and weights that are not a regular file are named for what they
 * are. Device nodes and FIFOs are made in temporary folders (the tests run as root); /dev/null is checked to stay a
 * character device.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { VggFaceError } from '../src/errors.js';
import { writeRocPlot } from '../src/distance/roc-plot.js';
import { convertModel } from '../src/onnx/convert-model.js';
import { convertWeightsToOnnx } from '../src/onnx/convert.js';
import { cachedModelPath } from '../src/model/cache.js';
import { ensureDetectorModel, YUNET_FILE } from '../src/face/detector-model.js';
import { checkOutputPath, fileKind, openForReading, regularFileStat } from '../src/util/files.js';
import { sha256File } from '../src/util/hash.js';
import { saveCalibrations, calibrationPath } from '../src/verify/thresholds.js';
import type { ModelIdentity } from '../src/model/identity.js';
import { VggFace } from '../src/vggface.js';
import { uniqueStems } from '../src/cli/commands/faces.js';
import { FACES_DIR, GOLDEN_DIR, runCli, tempDir } from './helpers.js';
import { YUNET_MODEL } from './fixtures/faces.js';

const WEIGHTS = join(GOLDEN_DIR, 'VGG_FACE.caffemodel');
const PHOTO = join(FACES_DIR, 'couple.jpg');
const DETECTOR = ['--detector-model', YUNET_MODEL];

const mkfifo = (path: string) => execFileSync('mkfifo', [path]);
/** A character device with /dev/null's numbers, in a folder of the test's own. */
const mknodNull = (path: string) => execFileSync('mknod', [path, 'c', '1', '3']);

/** Every entry of a folder: its kind and, for regular files, its bytes (to show nothing changed, nothing was added). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) {
    const st = lstatSync(join(dir, name));
    out[name] = st.isFile() ? `file ${readFileSync(join(dir, name)).toString('base64')}` : fileKind(st);
  }
  return out;
}

function assertDevNullIntact(): void {
  const st = statSync('/dev/null');
  assert.ok(st.isCharacterDevice(), '/dev/null is still a character device');
  assert.equal(st.rdev, statSync('/dev/zero').rdev - 2, '/dev/null is still device 1,3');
}

// ------------------------------------------------------------------------------------------------ the helper

test(
  'checkOutputPath: nothing there, or a regular file that is no input; ' +
    'refuses links, devices, FIFOs, folders, inputs',
  (t) => {
    const dir = tempDir(t);
    const input = join(dir, 'in.bin');
    writeFileSync(input, 'input');
    assert.deepEqual(checkOutputPath(join(dir, 'new.bin'), [input]), { exists: false, size: 0 });
    writeFileSync(join(dir, 'old.bin'), 'abc');
    assert.deepEqual(checkOutputPath(join(dir, 'old.bin'), [input]), { exists: true, size: 3 });

    const refuse = (path: string, inputs: string[], message: RegExp) =>
      assert.throws(
        () => checkOutputPath(path, inputs),
        (err: unknown) => {
          assert.ok(err instanceof VggFaceError);
          assert.equal(err.code, 'E_IO');
          assert.equal(err.exitCode, 1);
          assert.equal(err.input, path);
          assert.match(err.message, message);
          return true;
        },
      );
    refuse(input, [input], /in\.bin: is one of the inputs; refusing to overwrite it: choose another output file$/);
    linkSync(input, join(dir, 'hard.bin'));
    refuse(join(dir, 'hard.bin'), [input], /hard\.bin: is one of the inputs \(.*in\.bin\)/);
    symlinkSync('in.bin', join(dir, 'soft.bin'));
    refuse(
      join(dir, 'soft.bin'),
      [],
      /soft\.bin: not a regular file: a symbolic link to in\.bin; refusing to replace it/,
    );
    // An input given through a link is still the file it points to.
    refuse(input, [join(dir, 'soft.bin')], /in\.bin: is one of the inputs \(.*soft\.bin\)/);
    mkfifo(join(dir, 'fifo'));
    refuse(join(dir, 'fifo'), [], /fifo: not a regular file: a FIFO \(named pipe\); refusing to write over it$/);
    mknodNull(join(dir, 'null'));
    refuse(join(dir, 'null'), [], /null: not a regular file: a character device; refusing to write over it$/);
    refuse('/dev/null', [], /^\/dev\/null: not a regular file: a character device/);
    mkdirSync(join(dir, 'sub'));
    refuse(join(dir, 'sub'), [], /sub: not a regular file: a directory/);
    assertDevNullIntact();
  },
);

test('reading: a device, a FIFO or a folder is named for what it is, without blocking on the FIFO', (t) => {
  const dir = tempDir(t);
  mkfifo(join(dir, 'fifo'));
  assert.throws(
    () => regularFileStat('/dev/zero'),
    /^VggFaceError: \/dev\/zero: not a regular file: a character device$/,
  );
  assert.throws(() => openForReading(join(dir, 'fifo')), /fifo: not a regular file: a FIFO \(named pipe\)$/);
  assert.throws(() => openForReading(dir), /is a directory, expected a file/);
  assert.throws(() => openForReading(join(dir, 'missing')), /missing: no such file or directory/);
});

// ------------------------------------------------------------------------------------------------ weights (item 8)

test('weights: /dev/zero and a FIFO are "not a regular file", not "empty ' +
  'file"; convert of /dev/zero does not hash forever', {
  timeout: 60_000,
}, async (t) => {
  const dir = tempDir(t);
  const fifo = join(dir, 'weights.fifo');
  mkfifo(fifo);
  for (const [weights, kind] of [
    ['/dev/zero', 'a character device'],
    [fifo, 'a FIFO \\(named pipe\\)'],
  ]) {
    const r = await runCli([
      'describe',
      '--detector',
      'none',
      '-w',
      weights,
      '--cache-dir',
      dir,
      join(GOLDEN_DIR, 'img1.png'),
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^vggface: ${weights}: not a regular file: ${kind}\\n$`));
    const i = await runCli(['inspect', weights]);
    assert.equal(i.code, 1);
    assert.match(i.stderr, new RegExp(`${weights}: not a regular file: ${kind}`));
    const c = await runCli(['convert', weights, '-o', join(dir, 'out.onnx')]);
    assert.equal(c.code, 1);
    assert.match(c.stderr, new RegExp(`${weights}: not a regular file: ${kind}`));
  }
  await assert.rejects(sha256File('/dev/zero'), /not a regular file: a character device/);
  assert.deepEqual(Object.keys(snapshot(dir)), ['weights.fifo'], 'no model written, nothing cached');
});

// ------------------------------------------------------------------------------------------------ convert

test(
  'convert -o: refuses its input (same path, ./x, a hard ' + 'link), links, FIFOs, devices, folders; nothing written',
  async (t) => {
    const dir = tempDir(t);
    copyFileSync(WEIGHTS, join(dir, 'w.caffemodel'));
    linkSync(join(dir, 'w.caffemodel'), join(dir, 'hard.onnx'));
    symlinkSync('w.caffemodel', join(dir, 'soft.onnx'));
    writeFileSync(join(dir, 'other.txt'), 'keep me');
    symlinkSync('other.txt', join(dir, 'to-other.onnx'));
    mkfifo(join(dir, 'fifo.onnx'));
    mknodNull(join(dir, 'null.onnx'));
    mkdirSync(join(dir, 'dir.onnx'));
    const before = snapshot(dir);
    const cases: [string, RegExp][] = [
      [
        'w.caffemodel',
        /^vggface: w\.caffemodel: is one of the inputs; refusing to overwrite it: choose another output file\n$/,
      ],
      [
        './w.caffemodel',
        /^vggface: \.\/w\.caffemodel: is one of the inputs \(w\.caffemodel\); refusing to overwrite it/,
      ],
      [join(dir, 'w.caffemodel'), /w\.caffemodel: is one of the inputs \(w\.caffemodel\)/],
      ['hard.onnx', /^vggface: hard\.onnx: is one of the inputs \(w\.caffemodel\)/],
      [
        'soft.onnx',
        /^vggface: soft\.onnx: not a regular file: a symbolic link to w\.caffemodel; refusing to replace it/,
      ],
      ['to-other.onnx', /^vggface: to-other\.onnx: not a regular file: a symbolic link to other\.txt/],
      ['fifo.onnx', /^vggface: fifo\.onnx: not a regular file: a FIFO \(named pipe\); refusing to write over it\n$/],
      ['null.onnx', /^vggface: null\.onnx: not a regular file: a character device; refusing to write over it\n$/],
      ['/dev/null', /^vggface: \/dev\/null: not a regular file: a character device/],
      ['dir.onnx', /^vggface: dir\.onnx: not a regular file: a directory/],
    ];
    for (const precision of ['fp32', 'int8']) {
      for (const [output, message] of cases) {
        const r = await runCli(['convert', 'w.caffemodel', '-o', output, '--precision', precision], { cwd: dir });
        assert.equal(r.code, 1, `${output}: ${r.stderr}`);
        assert.match(r.stderr, message, output);
        assert.equal(r.stdout, '');
      }
    }
    assert.deepEqual(snapshot(dir), before, 'every file unchanged, byte for byte; no temporary file left');
    assert.ok(lstatSync(join(dir, 'fifo.onnx')).isFIFO() && lstatSync(join(dir, 'null.onnx')).isCharacterDevice());
    assertDevNullIntact();
    // A regular file that is not an input is replaced, as before.
    const ok = await runCli(['convert', 'w.caffemodel', '-o', 'other.txt'], { cwd: dir });
    assert.equal(ok.code, 0, ok.stderr);
    assert.notEqual(readFileSync(join(dir, 'other.txt'), 'utf8'), 'keep me');
  },
);

test('convert in the library: convertModel and convertWeightsToOnnx refuse their source', async (t) => {
  const dir = tempDir(t);
  const src = join(dir, 'w.caffemodel');
  copyFileSync(WEIGHTS, src);
  const bytes = readFileSync(src);
  await assert.rejects(convertModel(src, src, { preprocessing: 'caffe' }), /w\.caffemodel: is one of the inputs/);
  await assert.rejects(
    convertWeightsToOnnx(src, join(dir, '.', 'w.caffemodel'), { preprocessing: 'caffe' }),
    /is one of the inputs/,
  );
  assert.deepEqual(readFileSync(src), bytes);
  assert.deepEqual(readdirSync(dir), ['w.caffemodel']);
});

// ------------------------------------------------------------------------------------------------ caches

test('model cache: a FIFO where the converted model goes is refused, not replaced', async (t) => {
  const cache = tempDir(t);
  const entry = cachedModelPath(cache, await sha256File(WEIGHTS), 'caffe', 'fp32');
  mkdirSync(join(cache, 'models'));
  mkfifo(entry);
  await assert.rejects(VggFace.load({ weights: WEIGHTS, cacheDir: cache }), (err: unknown) => {
    assert.ok(err instanceof VggFaceError && err.code === 'E_IO');
    assert.equal(err.message, `${entry}: not a regular file: a FIFO (named pipe); refusing to write over it`);
    return true;
  });
  assert.ok(lstatSync(entry).isFIFO());
  assert.deepEqual(readdirSync(join(cache, 'models')), [entry.split('/').pop()]);
});

test('detector cache: a device where the detector goes is refused before any download', async (t) => {
  const cache = tempDir(t);
  mkdirSync(join(cache, 'detector'));
  const target = join(cache, 'detector', YUNET_FILE);
  mknodNull(target);
  // Port 9 (discard) is closed: reaching the network would fail with another message.
  await assert.rejects(
    ensureDetectorModel({ cacheDir: cache, url: 'http://127.0.0.1:9/yunet.onnx' }),
    new RegExp(`^VggFaceError: ${target}: not a regular file: a character device`),
  );
  assert.ok(lstatSync(target).isCharacterDevice());
  assert.deepEqual(readdirSync(join(cache, 'detector')), [YUNET_FILE]);
});

test(
  'calibrations: a FIFO or an input where the calibration ' + 'goes is refused (no blocking read, nothing written)',
  async (t) => {
    const cache = tempDir(t);
    const id: ModelIdentity = {
      sha256: 'a'.repeat(64),
      preprocessing: 'caffe',
      key: `${'a'.repeat(64)}-caffe`,
      name: 'x',
    };
    const entry = {
      metric: 'cosine' as const,
      threshold: 0.3,
      accuracy: 0.9,
      crossValidatedAccuracy: 0.9,
      pairs: 10,
      pairsFile: 'p.csv',
      date: '2026-01-01T00:00:00Z',
    };
    const path = calibrationPath(cache, id);
    mkdirSync(join(cache, 'thresholds'));
    mkfifo(path);
    await assert.rejects(
      saveCalibrations(cache, id, [entry]),
      /-caffe\.json: not a regular file: a FIFO \(named pipe\)/,
    );
    assert.ok(lstatSync(path).isFIFO());
    rmSync(path);
    writeFileSync(path, '{}\n');
    await assert.rejects(saveCalibrations(cache, id, [entry], [path]), /-caffe\.json: is one of the inputs/);
    assert.equal(readFileSync(path, 'utf8'), '{}\n');
    assert.deepEqual(readdirSync(join(cache, 'thresholds')), [path.split('/').pop()]);
    assert.equal(await saveCalibrations(cache, id, [entry]), path);
    assert.equal(JSON.parse(readFileSync(path, 'utf8')).thresholds.cosine.threshold, 0.3);
  },
);

test('writeRocPlot refuses a device, a link and an input', async (t) => {
  const dir = tempDir(t);
  const roc = [
    { far: 0, tar: 0, threshold: 1 },
    { far: 1, tar: 1, threshold: 0 },
  ];
  const info = { title: 't', auc: 0.5, eer: 0.5, differentPairs: 1 };
  mknodNull(join(dir, 'dev.svg'));
  symlinkSync('dev.svg', join(dir, 'link.svg'));
  writeFileSync(join(dir, 'pairs.svg'), 'pairs');
  await assert.rejects(
    writeRocPlot(join(dir, 'dev.svg'), roc, info),
    /dev\.svg: not a regular file: a character device/,
  );
  await assert.rejects(
    writeRocPlot(join(dir, 'link.svg'), roc, info),
    /link\.svg: not a regular file: a symbolic link to dev\.svg/,
  );
  await assert.rejects(
    writeRocPlot(join(dir, 'pairs.svg'), roc, info, [join(dir, 'pairs.svg')]),
    /pairs\.svg: is one of the inputs/,
  );
  assert.deepEqual(snapshot(dir), {
    'dev.svg': 'a character device',
    'link.svg': 'a symbolic link',
    'pairs.svg': `file ${Buffer.from('pairs').toString('base64')}`,
  });
});

// ------------------------------------------------------------------------------------------------ describe -o

test(
  'describe -o: devices, FIFOs, links and inputs (images, weights) are ' +
    'refused before the model loads; no index left',
  async (t) => {
    const dir = tempDir(t);
    const img = join(dir, 'img1.png');
    copyFileSync(join(GOLDEN_DIR, 'img1.png'), img);
    copyFileSync(WEIGHTS, join(dir, 'w.caffemodel'));
    mknodNull(join(dir, 'chr.npy'));
    mkfifo(join(dir, 'fifo.jsonl'));
    symlinkSync('img1.png', join(dir, 'link.jsonl'));
    writeFileSync(join(dir, 'side.f32'), '');
    mkfifo(join(dir, 'side.f32.index.jsonl'));
    writeFileSync(join(dir, 'list.txt'), `${img}\n`);
    const before = snapshot(dir);
    const run = (output: string, ...more: string[]) =>
      runCli(
        [
          'describe',
          '--detector',
          'none',
          '-w',
          'w.caffemodel',
          '--cache-dir',
          join(dir, 'cache'),
          '-o',
          output,
          ...more,
        ],
        { cwd: dir },
      );
    const cases: [string[], RegExp][] = [
      [
        ['/dev/null', '--output-format', 'jsonl', 'img1.png'],
        /^vggface: \/dev\/null: not a regular file: a character device; refusing to write over it\n$/,
      ],
      [
        ['chr.npy', '--overwrite', 'img1.png'],
        /^vggface: chr\.npy: not a regular file: a character device; refusing to write over it\n$/,
      ],
      [['chr.npy', '--resume', 'img1.png'], /^vggface: chr\.npy: not a regular file: a character device/],
      [['fifo.jsonl', 'img1.png'], /^vggface: fifo\.jsonl: not a regular file: a FIFO \(named pipe\)/],
      [
        ['link.jsonl', '--overwrite', 'img1.png'],
        /^vggface: link\.jsonl: not a regular file: a symbolic link to img1\.png/,
      ],
      [['side.f32', 'img1.png'], /^vggface: side\.f32\.index\.jsonl: not a regular file: a FIFO \(named pipe\)/],
      [
        ['./img1.png', '--output-format', 'jsonl', '--overwrite', 'img1.png'],
        /^vggface: \.\/img1\.png: is one of the inputs \(img1\.png\); refusing to overwrite it/,
      ],
      [
        ['list.txt', '--output-format', 'jsonl', '--overwrite', '--list', 'list.txt'],
        /^vggface: list\.txt: is one of the inputs; refusing/,
      ],
      [
        ['w.caffemodel', '--output-format', 'f32', '--overwrite', 'img1.png'],
        /^vggface: w\.caffemodel: is one of the inputs; refusing/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await run(...(args as [string, ...string[]]));
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
      assert.equal(r.stdout, '');
    }
    assert.deepEqual(snapshot(dir), before, 'nothing changed, no .index.jsonl, no model converted (no cache)');
    assertDevNullIntact();
  },
);

// ------------------------------------------------------------------------------------------------ faces -o

test(
  'faces -o: existing crops are refused without --overwrite and replaced ' +
    'with it; crops never replace inputs, links or FIFOs',
  async (t) => {
    const dir = tempDir(t);
    const out = join(dir, 'out');
    const first = await runCli(['faces', PHOTO, '-o', out, ...DETECTOR]);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(readdirSync(out).sort(), ['couple-1.png', 'couple-2.png']);
    const crops = snapshot(out);
    writeFileSync(join(out, 'couple-1.png'), 'an earlier crop');
    const earlier = snapshot(out);

    const again = await runCli(['faces', PHOTO, '-o', out, ...DETECTOR]);
    assert.equal(again.code, 2, again.stderr);
    assert.equal(
      again.stderr,
      `vggface: ${join(out, 'couple-1.png')} exists (and 1 more crop of these photos): pass ` +
        '--overwrite to replace the crops of an earlier run, or choose another folder\n',
    );
    assert.equal(again.stdout, '');
    assert.deepEqual(snapshot(out), earlier, 'nothing written');

    const replaced = await runCli(['faces', PHOTO, '-o', out, '--overwrite', ...DETECTOR]);
    assert.equal(replaced.code, 0, replaced.stderr);
    assert.deepEqual(snapshot(out), crops, 'the crops are written again, the same bytes');

    // Other photos' crops do not count, and a photo's crops are named by its stem only.
    const other = await runCli(['faces', join(FACES_DIR, 'img1.jpg'), '-o', out, ...DETECTOR]);
    assert.equal(other.code, 0, other.stderr);
    assert.deepEqual(readdirSync(out).sort(), ['couple-1.png', 'couple-2.png', 'img1-1.png']);

    // With --overwrite, a crop's place holding an input (a photo named like a crop), a FIFO or a link is still refused.
    const photos = join(dir, 'photos');
    mkdirSync(photos);
    copyFileSync(PHOTO, join(photos, 'x.jpg'));
    copyFileSync(join(FACES_DIR, 'img1.jpg'), join(photos, 'x-2.png'));
    const inputBefore = snapshot(photos);
    const onInput = await runCli([
      'faces',
      join(photos, 'x.jpg'),
      join(photos, 'x-2.png'),
      '-o',
      photos,
      '--overwrite',
      ...DETECTOR,
    ]);
    assert.equal(onInput.code, 1, onInput.stderr);
    assert.match(
      onInput.stderr,
      /^vggface: .*photos\/x-2\.png: is one of the inputs; refusing to overwrite it: choose another output file\n$/,
    );
    assert.deepEqual(snapshot(photos), inputBefore, 'no crop written');
    rmSync(join(out, 'couple-2.png'));
    mkfifo(join(out, 'couple-2.png'));
    writeFileSync(join(out, 'couple-1.png'), 'an earlier crop');
    const beforeFifo = snapshot(out);
    const onFifo = await runCli(['faces', PHOTO, '-o', out, '--overwrite', ...DETECTOR]);
    assert.equal(onFifo.code, 1);
    assert.match(
      onFifo.stderr,
      /out\/couple-2\.png: not a regular file: a FIFO \(named pipe\); refusing to write over it\n$/,
    );
    assert.deepEqual(snapshot(out), beforeFifo, 'the other crop is not written either');
  },
);

test('faces -o: a path that is not a folder is refused', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'file'), 'x');
  const onFile = await runCli(['faces', PHOTO, '-o', join(dir, 'file'), ...DETECTOR]);
  assert.equal(onFile.code, 1);
  assert.match(onFile.stderr, /file: not a directory: a regular file; -o names the folder for the crops\n$/);
  const onNull = await runCli(['faces', PHOTO, '-o', '/dev/null', ...DETECTOR]);
  assert.equal(onNull.code, 1);
  assert.equal(
    onNull.stderr,
    'vggface: /dev/null: not a directory: a character device; -o names the folder for the crops\n',
  );
  assertDevNullIntact();
  assert.equal(readFileSync(join(dir, 'file'), 'utf8'), 'x');
});

test('faces: crop names stay unique even when a photo is named like a renamed duplicate', () => {
  assert.deepEqual(uniqueStems(['a/x.jpg', 'b/x.jpg', 'x_2.png', 'c/x.jpeg', 'y']), ['x', 'x_2', 'x_2_2', 'x_3', 'y']);
  assert.deepEqual(uniqueStems(['x_2.jpg', 'x.jpg', 'b/x.jpg']), ['x_2', 'x', 'x_3']);
});

// ------------------------------------------------------------------------------------------------ eval --roc

test('eval --roc: the pairs file, an image, a device or a link are refused before the model loads', async (t) => {
  const dir = tempDir(t);
  const pairs = join(dir, 'pairs.svg');
  writeFileSync(pairs, 'file_x,file_y,Decision\nimg1.jpg,img2.jpg,Yes\nimg1.jpg,img3.jpg,No\n');
  mknodNull(join(dir, 'dev.png'));
  symlinkSync('dev.png', join(dir, 'link.svg'));
  const before = snapshot(dir);
  const run = (roc: string) =>
    runCli([
      'eval',
      '--pairs',
      pairs,
      '--images',
      FACES_DIR,
      '-w',
      WEIGHTS,
      '--cache-dir',
      join(dir, 'cache'),
      '--roc',
      roc,
      ...DETECTOR,
    ]);
  const cases: [string, RegExp][] = [
    [pairs, /pairs\.svg: is one of the inputs; refusing to overwrite it/],
    [join(dir, 'dev.png'), /dev\.png: not a regular file: a character device/],
    [join(dir, 'link.svg'), /link\.svg: not a regular file: a symbolic link to dev\.png/],
  ];
  for (const [roc, message] of cases) {
    const r = await run(roc);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '');
  }
  assert.deepEqual(snapshot(dir), before, 'nothing written, no model converted');
  // A photo of the pairs, given as the ROC file, is refused too (by inode, whatever the path).
  const photos = join(dir, 'photos');
  mkdirSync(photos);
  for (const n of ['img1.jpg', 'img2.jpg', 'img3.jpg']) copyFileSync(join(FACES_DIR, n), join(photos, n));
  linkSync(join(photos, 'img2.jpg'), join(photos, 'img2.png'));
  const onImage = await runCli([
    'eval',
    '--pairs',
    pairs,
    '--images',
    photos,
    '-w',
    WEIGHTS,
    '--cache-dir',
    join(dir, 'cache'),
    '--roc',
    join(photos, 'img2.png'),
    ...DETECTOR,
  ]);
  assert.equal(onImage.code, 1);
  assert.match(onImage.stderr, /img2\.png: is one of the inputs \(.*img2\.jpg\)/);
  assert.deepEqual(readFileSync(join(photos, 'img2.png')), readFileSync(join(FACES_DIR, 'img2.jpg')));
});
