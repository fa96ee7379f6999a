// @tags: full-size
/**
 * Issue 3: PyTorch `.pth` state dicts, zip archive and legacy stream: golden numbers, the same weights as the
 * Caffe release, round trips through the project's writer in every variant real files come in (names, wrappers,
 * dtypes, byte order, shared storages, non-contiguous tensors, real dimensions), zero-copy views, and clear errors
 * for hostile, truncated, incomplete and wrong-topology files.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { VggFaceError } from '../src/errors.js';
import { detectFormat, readWeights } from '../src/weights/formats.js';
import { FULL_WIDTHS } from '../src/weights/topology.js';
import type { WeightSet } from '../src/weights/types.js';
import {
  PickleWriter,
  pytorchZipEntries,
  writePytorch,
  writeZipEntries,
  type PytorchWriteOptions,
} from './fixtures/pytorch-writer.js';
import { randomWeights, TINY_WIDTHS } from './fixtures/random-weights.js';
import { GOLDEN_DIR, tempDir } from './helpers.js';
import { assertSameWeights } from './fixtures/compare-weights.js';
import { assertGoldenCli, assertGoldenLibrary, assertInspect, expectCliError } from './weights-check.js';

const GOLDEN_PTH = join(GOLDEN_DIR, 'vgg_face_dag.pth');

test('vgg_face_dag.pth: library reproduces golden fc6, fc7, fc8 and fc7_l2', async (t) => {
  await assertGoldenLibrary(t, GOLDEN_PTH);
});

test(
  'vgg_face_dag.pth: CLI describe --weights reproduces golden ' +
    'fc7_l2; inspect names pytorch, the zip layout and RGB',
  async (t) => {
    await assertGoldenCli(t, GOLDEN_PTH);
    await assertInspect(
      GOLDEN_PTH,
      'pytorch',
      /PyTorch zip archive \(vgg_face_dag\/data\.pkl, vgg_face_dag\/data\/<key>, little-endian\)/,
      'RGB',
    );
  },
);

test('vgg_face_dag.pth: holds exactly the weights of the golden caffemodel, conv1_1 reading RGB', async () => {
  const caffe = await readWeights(join(GOLDEN_DIR, 'VGG_FACE.caffemodel'));
  const pth = await readWeights(GOLDEN_PTH);
  assert.equal(pth.format, 'pytorch');
  assert.equal(pth.weights.inputChannelOrder, 'RGB');
  assertSameWeights(pth.weights, caffe.weights, 'vgg_face_dag.pth');
});

test('legacy (pre-1.6) .pth: golden numbers through the CLI; inspect names the legacy layout', async (t) => {
  const golden = await readWeights(GOLDEN_PTH);
  const path = join(tempDir(t), 'vgg_face_dag_legacy.pth');
  await writePytorch(path, golden.weights, { container: 'legacy' });
  await assertGoldenCli(t, path);
  await assertInspect(path, 'pytorch', /PyTorch legacy serialization \(torch\.save < 1\.6, little-endian\)/, 'RGB');
});

const VARIANTS: readonly { name: string; o: PytorchWriteOptions; dtype?: string; layout?: RegExp }[] = [
  { name: 'zip, vgg_face_dag names', o: {} },
  { name: 'zip, top folder with a space', o: { top: 'my model' }, layout: /my model\/data\.pkl/ },
  { name: 'zip, torchvision features.N/classifier.N names', o: { naming: 'torchvision' } },
  { name: 'zip, under a state_dict key with other entries', o: { wrapper: 'state_dict' } },
  { name: 'zip, under a model key, plain dict', o: { wrapper: 'model', ordered: false } },
  { name: 'zip, float64', o: { dtype: 'float64' }, dtype: 'float64' },
  { name: 'zip, big-endian', o: { byteOrder: 'big' }, layout: /big-endian/ },
  { name: 'zip, one shared storage with offsets', o: { sharedStorage: true } },
  { name: 'zip, non-contiguous (transposed) fc weights', o: { transposedFc: true } },
  { name: 'legacy', o: { container: 'legacy' }, layout: /legacy/ },
  {
    name: 'legacy, float64, big-endian',
    o: { container: 'legacy', dtype: 'float64', byteOrder: 'big' },
    dtype: 'float64',
    layout: /legacy.*big-endian/,
  },
  {
    name: 'legacy, shared storage, torchvision names',
    o: { container: 'legacy', sharedStorage: true, naming: 'torchvision' },
  },
  { name: 'legacy, PyTorch < 0.4 _rebuild_tensor', o: { container: 'legacy', rebuildV1: true } },
];

test('float16 and bfloat16 storages (HalfStorage, BFloat16Storage) convert to float32 exactly', async (t) => {
  // Values on a 1/64 grid below 2 in magnitude fit both 16-bit formats exactly.
  const w = randomWeights(TINY_WIDTHS, 33, 'RGB');
  const grid: WeightSet = {
    ...w,
    layers: w.layers.map((l) => ({
      ...l,
      weight: { shape: l.weight.shape, data: l.weight.data.map((x) => Math.round(x * 64) / 64) },
      bias: { shape: l.bias.shape, data: l.bias.data.map((x) => Math.round(x * 64) / 64 + 1 / 64) },
    })),
  };
  const dir = tempDir(t);
  for (const [dtype, container, byteOrder] of [
    ['float16', 'zip', 'little'],
    ['bfloat16', 'zip', 'big'],
    ['float16', 'legacy', 'big'],
  ] as const) {
    const path = join(dir, `${dtype}-${container}.pth`);
    await writePytorch(path, grid, { dtype, container, byteOrder });
    const { weights } = await readWeights(path);
    assert.equal(weights.sourceDtype, dtype);
    assertSameWeights(weights, grid, `${dtype} ${container} ${byteOrder}`);
  }
  // The file really holds 16-bit values: 1 + 2^-12 is not a half, and reads back as the nearest one, 1.
  const odd: WeightSet = {
    ...grid,
    layers: grid.layers.map((l, i) =>
      i === 15 ? { ...l, bias: { shape: l.bias.shape, data: Float32Array.from(l.bias.data, () => 1 + 2 ** -12) } } : l,
    ),
  };
  const path = join(dir, 'rounded.pth');
  await writePytorch(path, odd, { dtype: 'float16' });
  assert.deepEqual([...(await readWeights(path)).weights.layers[15].bias.data], new Array(10).fill(1));
});

for (const v of VARIANTS) {
  test(`round trip: ${v.name}`, async (t) => {
    const w = randomWeights(TINY_WIDTHS, 31, 'BGR');
    const path = join(tempDir(t), 'weights.dat');
    await writePytorch(path, w, v.o);
    assert.equal(await detectFormat(path), 'pytorch');
    const { weights, format } = await readWeights(path);
    assert.equal(format, 'pytorch');
    assert.equal(weights.inputChannelOrder, 'RGB');
    assert.equal(weights.sourceDtype, v.dtype ?? 'float32');
    if (v.layout) assert.match(weights.layout, v.layout);
    assertSameWeights(weights, w, v.name);
  });
}

test('contiguous float32 tensors are views over the storage bytes, not copies', async (t) => {
  const w = randomWeights(TINY_WIDTHS, 2, 'RGB');
  const dir = tempDir(t);
  for (const container of ['zip', 'legacy'] as const) {
    const path = join(dir, `${container}.pth`);
    await writePytorch(path, w, { container, sharedStorage: true });
    const { weights } = await readWeights(path);
    const buffers = new Set(weights.layers.flatMap((l) => [l.weight.data.buffer, l.bias.data.buffer]));
    assert.equal(buffers.size, 1, `${container}: all 32 tensors view the one shared storage`);
    assert.equal(
      [...buffers][0].byteLength,
      w.layers.reduce((a, l) => a + l.weight.data.byteLength + l.bias.data.byteLength, 0),
    );
  }
});

test('real VGG-Face dimensions: zip and legacy written and read back exactly', async (t) => {
  const w = randomWeights(FULL_WIDTHS, 8, 'RGB');
  const dir = tempDir(t);
  for (const container of ['zip', 'legacy'] as const) {
    const path = join(dir, `${container}.pth`);
    await writePytorch(path, w, { container, top: 'vgg_face_dag' });
    const { weights, topology } = await readWeights(path);
    assert.equal(topology.parameters, 145_002_878);
    assert.deepEqual([topology.fc6, topology.fc7, topology.fc8], [4096, 4096, 2622]);
    assertSameWeights(weights, w, `${container} full size`);
  }
});

// ---------------------------------------------------------------- hostile and broken files

/** A zip .pth whose data.pkl is `pickle`. */
async function zipWithPickle(path: string, pickle: Buffer): Promise<void> {
  await writeZipEntries(path, [
    ['archive/data.pkl', pickle],
    ['archive/version', Buffer.from('3\n')],
  ]);
}

test(
  'a .pth whose pickle calls os.system, builtins.eval or posix.system ' +
    'is refused naming the global, and nothing runs',
  async (t) => {
    const dir = tempDir(t);
    const marker = join(dir, 'PWNED');
    const cases: [string, Buffer][] = [
      [
        'os.system',
        new PickleWriter()
          .proto(2)
          .emptyDict()
          .str('conv1_1.weight')
          .global('os', 'system')
          .str(`touch ${marker}`)
          .tuple1()
          .reduce()
          .setitem()
          .stop()
          .bytes(),
      ],
      [
        'posix.system',
        new PickleWriter().proto(2).global('posix', 'system').str(`touch ${marker}`).tuple1().reduce().stop().bytes(),
      ],
      [
        'builtins.eval',
        new PickleWriter()
          .proto(2)
          .global('builtins', 'eval')
          .str(`__import__('os').system('touch ${marker}')`)
          .tuple1()
          .reduce()
          .stop()
          .bytes(),
      ],
    ];
    for (const [global, pickle] of cases) {
      const zip = join(dir, `${global}.pth`);
      await zipWithPickle(zip, pickle);
      const stderr = await expectCliError(
        ['inspect', zip],
        1,
        new RegExp(
          `${global.replace('.', '\\.')}\\.pth: archive/data\\.pkl: refusing pickle ` +
            `global ${global.replace('.', '\\.')}: only collections\\.OrderedDict`,
        ),
      );
      assert.match(stderr, /vggface never runs code from a file/);
      // The legacy container reads the same pickle with the same allowlist.
      const legacy = join(dir, `${global}-legacy.pth`);
      const magic = new PickleWriter().proto(2).int(0x1950a86a20f9469cfc6cn).stop().bytes();
      const version = new PickleWriter().proto(2).int(1001).stop().bytes();
      const sys = new PickleWriter().proto(2).emptyDict().stop().bytes();
      writeFileSync(legacy, Buffer.concat([magic, version, sys, pickle]));
      await assert.rejects(
        readWeights(legacy),
        (err: unknown) =>
          err instanceof VggFaceError &&
          err.code === 'E_UNSAFE' &&
          err.message.includes(`refusing pickle global ${global}`),
      );
    }
    assert.equal(existsSync(marker), false, 'no command ran');
  },
);

test('a pickle with an unknown opcode is a format error naming the entry and the byte', async (t) => {
  const path = join(tempDir(t), 'opcode.pth');
  await zipWithPickle(path, Buffer.from([0x80, 0x02, 0x7d, 0xfe, 0x2e]));
  await expectCliError(['inspect', path], 1, /opcode\.pth: archive\/data\.pkl: unknown pickle opcode 0xfe at byte 3/);
});

test('truncated zip, missing storage, short storage, no data.pkl, not a state dict: clear errors', async (t) => {
  const dir = tempDir(t);
  const w = randomWeights(TINY_WIDTHS, 12);
  const good = join(dir, 'good.pth');
  await writePytorch(good, w);
  const bytes = readFileSync(good);

  const truncated = join(dir, 'truncated.pth');
  writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.7)));
  await expectCliError(
    ['inspect', truncated],
    1,
    // line-width: regex
    /truncated\.pth: its signature matches pytorch but its structure matches none of them: not a readable zip archive \(truncated or corrupt\): End of central directory record signature not found\. Either not a zip file, or file is truncated\. Use --format/,
  );
  await expectCliError(
    ['inspect', '--format', 'pytorch', truncated],
    1,
    /truncated\.pth: not a readable zip archive \(truncated or corrupt\)/,
  );

  const entries = pytorchZipEntries(w);
  const missing = join(dir, 'missing.pth');
  await writeZipEntries(
    missing,
    entries.filter(([name]) => name !== 'archive/data/5'),
  );
  await expectCliError(
    ['inspect', missing],
    1,
    /missing\.pth: storage archive\/data\/5, referenced by archive\/data\.pkl, is missing from the archive/,
  );

  const short = join(dir, 'short.pth');
  await writeZipEntries(
    short,
    entries.map(([name, b]): [string, Buffer] => [name, name === 'archive/data/4' ? b.subarray(0, 100) : b]),
  );
  await expectCliError(
    ['inspect', short],
    1,
    // line-width: regex
    /short\.pth: tensor conv2_1\.weight \(float32 8x4x3x3, strides 36,9,3,1, offset 0\) reads element 287 of storage 4, which holds 25 \(truncated or corrupt file\)/,
  );

  const deflated = join(dir, 'deflated.pth');
  await writeZipEntries(deflated, entries, true);
  assertSameWeights((await readWeights(deflated)).weights, w, 'deflated zip');

  const noPickle = join(dir, 'nopickle.pth');
  await writeZipEntries(
    noPickle,
    entries.filter(([name]) => !name.endsWith('data.pkl')),
  );
  await expectCliError(
    ['inspect', noPickle],
    1,
    // line-width: regex
    /nopickle\.pth: its signature matches pytorch but its structure matches none of them: a zip archive without data\.pkl \(entries: archive\/byteorder, /,
  );

  const list = join(dir, 'list.pth');
  await zipWithPickle(list, new PickleWriter().proto(2).emptyList().stop().bytes());
  await expectCliError(
    ['inspect', list],
    1,
    /list\.pth: expected a state dict \(a dict of tensors\), the file holds \(\)/,
  );

  const byteorder = join(dir, 'byteorder.pth');
  await writeZipEntries(
    byteorder,
    entries.map(([name, b]): [string, Buffer] => [name, name.endsWith('byteorder') ? Buffer.from('middle') : b]),
  );
  await expectCliError(
    ['inspect', byteorder],
    1,
    /byteorder\.pth: archive\/byteorder says "middle", expected little or big/,
  );
});

test('legacy stream: truncated storage data and a wrong protocol version are refused', async (t) => {
  const dir = tempDir(t);
  const w = randomWeights(TINY_WIDTHS, 13);
  const good = join(dir, 'legacy.pth');
  await writePytorch(good, w, { container: 'legacy' });
  const bytes = readFileSync(good);
  const truncated = join(dir, 'legacy-truncated.pth');
  writeFileSync(truncated, bytes.subarray(0, bytes.length - 1000));
  await expectCliError(
    ['inspect', truncated],
    1,
    // line-width: regex
    /legacy-truncated\.pth: truncated: storage \d+ \(\d+ float32 elements, \d+ bytes at byte \d+\) runs past the end of the file/,
  );
  const cut = join(dir, 'legacy-cut.pth');
  writeFileSync(cut, bytes.subarray(0, 200));
  await expectCliError(['inspect', cut], 1, /legacy-cut\.pth: legacy torch\.save stream: truncated pickle/);
  const version = join(dir, 'legacy-version.pth');
  const patched = Buffer.from(bytes);
  const at = patched.indexOf(Buffer.from([0x4d, 0xe9, 0x03])); // BININT2 1001
  patched[at + 1] = 0xea;
  writeFileSync(version, patched);
  await expectCliError(
    ['inspect', version],
    1,
    /legacy-version\.pth: legacy torch\.save stream: protocol version 1002, expected 1001/,
  );
});

test('wrong topology in a state dict: a missing layer, fc6 with the wrong input width, a 1-D weight', async (t) => {
  const dir = tempDir(t);
  const w = randomWeights(TINY_WIDTHS, 14, 'RGB');
  const missing = join(dir, 'missing.pth');
  await writePytorch(missing, { ...w, layers: w.layers.filter((l) => l.name !== 'conv4_2') });
  await expectCliError(
    ['inspect', missing],
    1,
    // line-width: regex
    /missing\.pth: VGG-Face has 13 conv layers then 3 fc layers with weights, file has 12 conv and 3 fc: conv1_1 \(conv 4x3x3x3\), .*conv4_1 \(conv 16x8x3x3\), conv4_3 \(conv 16x16x3x3\)/,
  );
  const fc6 = join(dir, 'fc6.pth');
  const layers = w.layers.map((l) =>
    l.name === 'fc6' ? { ...l, weight: { shape: [32, 512], data: new Float32Array(32 * 512) } } : l,
  );
  await writePytorch(fc6, { ...w, layers });
  await expectCliError(
    ['convert', fc6, '-o', join(dir, 'x.onnx')],
    1,
    /fc6: expects 784 inputs = 16x7x7 from pool5, file has 512/,
  );
  assert.equal(existsSync(join(dir, 'x.onnx')), false);
  const flat = join(dir, 'flat.pth');
  const oneD = w.layers.map((l) =>
    l.name === 'conv2_1' ? { ...l, weight: { shape: [288], data: new Float32Array(288) } } : l,
  );
  await writePytorch(flat, { ...w, layers: oneD });
  await expectCliError(
    ['inspect', flat],
    1,
    /flat\.pth: conv2_1\.weight has shape 288; VGG-Face has only conv \(out, in, kh, kw\) and fc \(out, in\) weights/,
  );
});
