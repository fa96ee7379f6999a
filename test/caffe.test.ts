/**
 * Issue 2: the Caffe reader reproduces the reference numbers, handles every blob encoding, and rejects bad files
 * clearly.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { VggFace } from '../src/vggface.js';
import { parseCaffeModel, sniffCaffe } from '../src/weights/caffe.js';
import { readWeights } from '../src/weights/formats.js';
import { ProtoMessage } from '../src/proto/writer.js';
import { randomWeights, TINY_WIDTHS } from './fixtures/random-weights.js';
import { caffeModel, writeCaffeModel } from './fixtures/caffe-writer.js';
import { assertClose, golden, GOLDEN_DIR, GOLDEN_IMAGES, jsonLines, runCli, tempDir } from './helpers.js';
import { expectCliError } from './weights-check.js';

const CAFFE_FILES = ['VGG_FACE.caffemodel', 'VGG_FACE_v2.caffemodel'];

for (const file of CAFFE_FILES) {
  test(`${file}: library reproduces golden fc6, fc7, fc7_pre, fc8 and fc7_l2`, async (t) => {
    const cacheDir = tempDir(t);
    const model = await VggFace.load({ weights: join(GOLDEN_DIR, file), cacheDir });
    t.after(() => model.close());
    assert.equal(model.origin, 'converted');
    const images = GOLDEN_IMAGES.map((f) => join(GOLDEN_DIR, f));
    const fc6 = await model.describe(images, { layer: 'fc6', normalize: false });
    const fc7 = await model.describe(images, { layer: 'fc7', normalize: false });
    const fc8 = await model.describe(images, { layer: 'fc8', normalize: false });
    const l2 = await model.describe(images);
    // fc7_pre is an output of the model too: read it through `run` on the decoded pixels.
    const pixels = new Uint8Array(4 * 224 * 224 * 3);
    for (let i = 0; i < 4; i++) {
      const { data, info } = await (await import('sharp'))
        .default(images[i])
        .removeAlpha()
        .raw()
        .toBuffer({ resolveWithObject: true });
      assert.equal(info.width * info.height, 224 * 224);
      pixels.set(data, i * 224 * 224 * 3);
    }
    const { fc7_pre } = await model.run(pixels, 4, ['fc7_pre']);
    GOLDEN_IMAGES.forEach((img, i) => {
      const g = golden.images[img];
      assertClose(fc6[i], g.fc6, 1e-4, `${img} fc6`);
      assertClose(fc7[i], g.fc7, 1e-4, `${img} fc7`);
      assertClose(fc7_pre.subarray(i * 32, (i + 1) * 32), g.fc7_pre, 1e-4, `${img} fc7_pre`);
      assertClose(fc8[i], g.fc8, 1e-4, `${img} fc8`);
      assertClose(l2[i], g.fc7_l2, 1e-4, `${img} fc7_l2`);
    });
  });

  test(`${file}: CLI describe --weights reproduces golden fc7_l2 on the four PNGs, and --raw gives fc7`, async (t) => {
    const env = { VGGFACE_CACHE: tempDir(t) };
    const paths = GOLDEN_IMAGES.map((f) => join(GOLDEN_DIR, f));
    const res = await runCli(['describe', '--detector', 'none', '--weights', join(GOLDEN_DIR, file), ...paths], {
      env,
    });
    assert.equal(res.code, 0, res.stderr);
    const lines = jsonLines<{ image: string; descriptor: number[] }>(res.stdout);
    assert.deepEqual(
      lines.map((l) => l.image),
      paths,
    );
    lines.forEach((l, i) =>
      assertClose(l.descriptor, golden.images[GOLDEN_IMAGES[i]].fc7_l2, 1e-4, `${GOLDEN_IMAGES[i]} via CLI`),
    );
    const raw = await runCli(
      ['describe', '--detector', 'none', '--weights', join(GOLDEN_DIR, file), '--raw', '--layer', 'fc7', paths[0]],
      { env },
    );
    assert.equal(raw.code, 0, raw.stderr);
    assertClose(
      jsonLines<{ descriptor: number[] }>(raw.stdout)[0].descriptor,
      golden.images['img1.png'].fc7,
      1e-4,
      'fc7 raw',
    );
  });
}

test('deepface preprocessing reproduces golden deepface_fc7_l2', async (t) => {
  const model = await VggFace.load({
    weights: join(GOLDEN_DIR, 'VGG_FACE.caffemodel'),
    cacheDir: tempDir(t),
    preprocessing: 'deepface',
  });
  t.after(() => model.close());
  for (const img of GOLDEN_IMAGES) {
    assertClose(
      await model.describe(join(GOLDEN_DIR, img)),
      golden.images[img].deepface_fc7_l2,
      1e-4,
      `${img} deepface`,
    );
  }
});

test('V1 and V2 golden files hold the same weights, detected as Caffe by content', async () => {
  const a = await readWeights(join(GOLDEN_DIR, 'VGG_FACE.caffemodel'));
  const b = await readWeights(join(GOLDEN_DIR, 'VGG_FACE_v2.caffemodel'));
  assert.equal(a.format, 'caffe');
  assert.match(a.weights.layout, /V1/);
  assert.match(b.weights.layout, /V2/);
  assert.equal(a.weights.inputChannelOrder, 'BGR');
  assert.deepEqual(a.topology.conv, TINY_WIDTHS.conv);
  assert.deepEqual([a.topology.fc6, a.topology.fc7, a.topology.fc8], [32, 32, 10]);
  for (let i = 0; i < 16; i++) {
    assert.deepEqual(a.weights.layers[i].weight.shape, b.weights.layers[i].weight.shape);
    assert.deepEqual([...a.weights.layers[i].weight.data], [...b.weights.layers[i].weight.data]);
  }
});

test('packed floats are viewed in place, moved back over their own framing when misaligned, not copied', () => {
  const w = randomWeights(TINY_WIDTHS, 3);
  for (const version of [1, 2] as const) {
    const bytes = caffeModel(w, { version }).toBuffer();
    const own = new Uint8Array(new ArrayBuffer(bytes.length));
    own.set(bytes);
    const { weights } = parseCaffeModel(own, 'mem');
    weights.layers.forEach((l, i) => {
      // Every weight blob here holds at least 108 floats: its length varint is 2+ bytes, room for any shift.
      assert.equal(l.weight.data.buffer, own.buffer, `V${version} ${l.name} weight was copied`);
      assert.deepEqual([...l.weight.data], [...w.layers[i].weight.data], `V${version} ${l.name} weight values`);
      assert.deepEqual([...l.bias.data], [...w.layers[i].bias.data], `V${version} ${l.name} bias values`);
    });
  }
});

for (const variant of [
  { version: 1 as const, double: false, unpacked: false },
  { version: 2 as const, double: false, unpacked: false },
  { version: 1 as const, double: true, unpacked: false },
  { version: 2 as const, double: false, unpacked: true },
  { version: 1 as const, double: false, unpacked: false, withActivations: false },
]) {
  test(
    'round trip: ' +
      `V${variant.version}${variant.double ? ' double_data' : ''}` +
      `${variant.unpacked ? ' unpacked floats' : ''}${variant.withActivations === false ? ' weights only' : ''}`,
    async (t) => {
      const w = randomWeights(TINY_WIDTHS, 7);
      const path = join(tempDir(t), 'm.caffemodel');
      writeCaffeModel(path, w, variant);
      const { weights, topology } = await readWeights(path);
      assert.equal(weights.sourceDtype, variant.double ? 'float64' : 'float32');
      assert.equal(
        topology.parameters,
        w.layers.reduce((s, l) => s + l.weight.data.length + l.bias.data.length, 0),
      );
      weights.layers.forEach((l, i) => {
        assert.deepEqual(l.weight.shape, w.layers[i].weight.shape, l.name);
        assert.deepEqual([...l.weight.data], [...w.layers[i].weight.data], `${l.name} weight`);
        assert.deepEqual([...l.bias.data], [...w.layers[i].bias.data], `${l.name} bias`);
      });
    },
  );
}

// ---------------------------------------------------------------- bad inputs

test('bad weight files: truncated, corrupt, not a NetParameter, empty, directory, missing', async (t) => {
  const dir = tempDir(t);
  const good = readFileSync(join(GOLDEN_DIR, 'VGG_FACE.caffemodel'));
  const truncated = join(dir, 'truncated.caffemodel');
  writeFileSync(truncated, good.subarray(0, Math.floor(good.length * 0.6)));
  const corrupt = join(dir, 'corrupt.caffemodel');
  const bad = Buffer.from(good);
  bad.fill(0xff, 24, 40); // the first layer's framing: varints that never end
  writeFileSync(corrupt, bad);
  const nan = join(dir, 'nan.caffemodel');
  const noisy = Buffer.from(good);
  noisy.fill(0xff, 2000, 2400); // inside a blob: 0xffffffff floats are NaN
  writeFileSync(nan, noisy);
  const notNet = join(dir, 'other.pb');
  writeFileSync(notNet, new ProtoMessage().string(1, 'x').varint(7, 3).toBuffer());
  const empty = join(dir, 'empty.caffemodel');
  writeFileSync(empty, '');
  const env = { VGGFACE_CACHE: join(dir, 'cache') };
  const img = join(GOLDEN_DIR, 'img1.png');

  await expectCliError(
    ['convert', truncated, '-o', join(dir, 'a.onnx')],
    1,
    /truncated\.caffemodel: truncated protobuf/,
    env,
  );
  await expectCliError(
    ['describe', '--detector', 'none', '--weights', corrupt, img],
    1,
    /corrupt\.caffemodel: (corrupt|truncated) protobuf/,
    env,
  );
  await expectCliError(
    ['convert', nan, '-o', join(dir, 'e.onnx')],
    1,
    /nan\.caffemodel: conv\d_\d weight has 100 non-finite values \(NaN or infinity\): the file is corrupt/,
    env,
  );
  await expectCliError(['inspect', notNet], 1, /other\.pb: unrecognised weight format/, env);
  await expectCliError(
    ['convert', notNet, '--format', 'caffe', '-o', join(dir, 'b.onnx')],
    1,
    /other\.pb: not a Caffe model: a protobuf with no NetParameter layers/,
    env,
  );
  await expectCliError(
    ['convert', empty, '-o', join(dir, 'c.onnx')],
    1,
    /empty\.caffemodel: empty file \(0 bytes\)/,
    env,
  );
  await expectCliError(['convert', dir, '-o', join(dir, 'd.onnx')], 1, /is a directory, expected a file/, env);
  await expectCliError(
    ['describe', '--detector', 'none', '--weights', join(dir, 'missing.caffemodel'), img],
    1,
    /missing\.caffemodel: no such file or directory/,
    env,
  );
  for (const f of ['a.onnx', 'b.onnx', 'c.onnx', 'd.onnx', 'e.onnx'])
    assert.equal(existsSync(join(dir, f)), false, `${f} must not exist`);
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes('.tmp-')),
    [],
    'no temporary files left',
  );
});

test('wrong topology: messages name the layer and both shapes', async (t) => {
  const dir = tempDir(t);
  // fc6 reading 4096 inputs instead of 16x7x7 = 784.
  const w = randomWeights(TINY_WIDTHS, 5);
  const layers = w.layers.map((l) =>
    l.name === 'fc6' ? { ...l, weight: { shape: [32, 4096], data: new Float32Array(32 * 4096) } } : l,
  );
  const fc6 = join(dir, 'fc6.caffemodel');
  writeCaffeModel(fc6, { ...w, layers });
  await expectCliError(
    ['convert', fc6, '-o', join(dir, 'x.onnx')],
    1,
    /fc6: expects 784 inputs = 16x7x7 from pool5, file has 4096/,
  );

  const missing = join(dir, 'missing-layer.caffemodel');
  writeCaffeModel(missing, { ...w, layers: w.layers.filter((l) => l.name !== 'conv3_3') });
  await expectCliError(
    ['inspect', missing],
    1,
    /VGG-Face has 13 conv layers then 3 fc layers with weights, file has 12 conv and 3 fc/,
  );

  const kernel = join(dir, 'kernel5.caffemodel');
  const k5 = w.layers.map((l) =>
    l.name === 'conv2_1' ? { ...l, weight: { shape: [8, 4, 5, 5], data: new Float32Array(8 * 4 * 25) } } : l,
  );
  writeCaffeModel(kernel, { ...w, layers: k5 });
  await expectCliError(['inspect', kernel], 1, /conv2_1: expects a 3x3 kernel, file has 5x5/);

  const chain = join(dir, 'chain.caffemodel');
  const wide = w.layers.map((l) =>
    l.name === 'conv1_2' ? { ...l, weight: { shape: [4, 5, 3, 3], data: new Float32Array(4 * 5 * 9) } } : l,
  );
  writeCaffeModel(chain, { ...w, layers: wide });
  await expectCliError(['inspect', chain], 1, /conv1_2: expects 4 input channels from conv1_1, file has 5/);
});

test('bad images: not an image, empty, too many pixels, unsupported format; the batch goes on', async (t) => {
  const dir = tempDir(t);
  const env = { VGGFACE_CACHE: join(dir, 'cache') };
  const text = join(dir, 'notes.jpg');
  writeFileSync(text, 'this is not an image\n');
  const empty = join(dir, 'empty.png');
  writeFileSync(empty, '');
  const svg = join(dir, 'pic.svg');
  writeFileSync(
    svg,
    '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
  );
  const weights = join(GOLDEN_DIR, 'VGG_FACE.caffemodel');
  const good = join(GOLDEN_DIR, 'img1.png');
  const res = await runCli(['describe', '--detector', 'none', '--weights', weights, text, good, empty, svg], { env });
  assert.equal(res.code, 1);
  assert.match(res.stderr, /notes\.jpg: not a decodable image/);
  assert.match(res.stderr, /empty\.png: empty file \(0 bytes\), not an image/);
  assert.match(res.stderr, /pic\.svg: svg images are not supported; expected JPEG, PNG, WebP, TIFF, GIF or AVIF/);
  const lines = jsonLines<{ image: string }>(res.stdout);
  assert.deepEqual(
    lines.map((l) => l.image),
    [good],
    'the good image is still described',
  );

  const big = await runCli(['describe', '--detector', 'none', '--weights', weights, '--max-pixels', '40000', good], {
    env,
  });
  assert.equal(big.code, 1);
  assert.match(big.stderr, /img1\.png: image is 224x224 = 50176 pixels, over the limit of 40000/);
});

test('a decompression bomb is refused from its header, before decoding', async (t) => {
  // A PNG whose header claims 30000x30000 pixels (900 MP) with almost no data behind it.
  const { crc32 } = await import('node:zlib');
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(30000, 0);
  ihdr.writeUInt32BE(30000, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', Buffer.alloc(16)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
  const dir = tempDir(t);
  const bomb = join(dir, 'bomb.png');
  writeFileSync(bomb, png);
  const model = await VggFace.load({ weights: join(GOLDEN_DIR, 'VGG_FACE.caffemodel'), cacheDir: join(dir, 'cache') });
  t.after(() => model.close());
  await assert.rejects(
    model.describe(bomb),
    /bomb\.png: image is 30000x30000 = 900000000 pixels, over the limit of 100000000/,
  );
});

test('unwritable output: clear error, exit 1, nothing left behind', async (t) => {
  const dir = tempDir(t);
  const blocker = join(dir, 'file');
  writeFileSync(blocker, 'x');
  await expectCliError(
    ['convert', join(GOLDEN_DIR, 'VGG_FACE.caffemodel'), '-o', join(blocker, 'model.onnx')],
    1,
    /file\/model\.onnx: a parent of this path is not a directory/,
  );
  await expectCliError(
    ['convert', join(GOLDEN_DIR, 'VGG_FACE.caffemodel'), '-o', join(dir, 'no', 'such', 'dir', 'm.onnx')],
    1,
    /m\.onnx: no such file or directory/,
  );
  assert.deepEqual(readdirSync(dir), ['file']);
});

test('usage errors exit 2', async () => {
  await expectCliError(
    ['describe', '--layer', 'fc9', 'x.jpg'],
    2,
    /Expected one of fc6, fc7, fc8 for --layer but received "fc9"/,
  );
  await expectCliError(
    ['describe', '--batch', '0', 'x.jpg'],
    2,
    /Expected an integer between 1 and 256 for --batch but received "0"/,
  );
  await expectCliError(
    ['describe', '--fit', 'zoom', 'x.jpg'],
    2,
    /Expected one of crop, pad, stretch, deepface for --fit but received "zoom"/,
  );
  await expectCliError(['convert', 'x'], 2, /required option '-o, --output <file>' not specified/);
  await expectCliError(['describe', '--detector', 'none'], 2, /no images: give image files, folders, or --list FILE/);
  await expectCliError(['frobnicate'], 2, /unknown command 'frobnicate'/);
});

test('sniffing: a caffemodel is recognised from its first bytes, ONNX and random bytes are not', () => {
  const head = readFileSync(join(GOLDEN_DIR, 'VGG_FACE.caffemodel')).subarray(0, 4096);
  assert.equal(sniffCaffe(head), true);
  assert.equal(sniffCaffe(Buffer.from([0x08, 0x08, 0x12, 0x03, 0x61, 0x62, 0x63])), false);
  assert.equal(sniffCaffe(Buffer.from('PK\x03\x04rest', 'latin1')), false);
});

test('convert writes a self-contained model; inspect reads its metadata; describe accepts the .onnx', async (t) => {
  const dir = tempDir(t);
  const onnx = join(dir, 'vgg.onnx');
  const conv = await runCli(['convert', join(GOLDEN_DIR, 'VGG_FACE.caffemodel'), '-o', onnx, '--json']);
  assert.equal(conv.code, 0, conv.stderr);
  const report = JSON.parse(conv.stdout) as {
    format: string;
    topology: { fc7: number; parameters: number };
    sha256: string;
  };
  assert.equal(report.format, 'caffe');
  assert.equal(report.topology.fc7, 32);
  const ins = await runCli(['inspect', onnx, '--json']);
  assert.equal(ins.code, 0, ins.stderr);
  const info = JSON.parse(ins.stdout) as { inputs: string[]; outputs: string[]; metadata: Record<string, string> };
  assert.deepEqual(info.inputs, ['image']);
  assert.deepEqual(info.outputs, ['fc6', 'fc7_pre', 'fc7', 'fc8', 'descriptor']);
  assert.equal(info.metadata['vggface.source.sha256'], report.sha256);
  assert.equal(info.metadata['vggface.source.channel_order'], 'BGR');
  assert.equal(info.metadata['vggface.preprocessing'], 'caffe');
  const model = await VggFace.load({ weights: onnx });
  t.after(() => model.close());
  assert.equal(model.origin, 'onnx');
  assertClose(
    await model.describe(join(GOLDEN_DIR, 'img5.png')),
    golden.images['img5.png'].fc7_l2,
    1e-4,
    'img5 via converted onnx',
  );
  const text = await runCli(['inspect', join(GOLDEN_DIR, 'VGG_FACE.caffemodel')]);
  assert.match(text.stdout, /format: +caffe \(Caffe NetParameter V1/);
  assert.match(text.stdout, /channel order: BGR/);
  assert.match(text.stdout, /fc6 +fc +32x784/);
});

test('a second load of the same weights is a cache hit', async (t) => {
  const cacheDir = tempDir(t);
  const weights = join(GOLDEN_DIR, 'VGG_FACE_v2.caffemodel');
  const a = await VggFace.load({ weights, cacheDir });
  await a.close();
  const b = await VggFace.load({ weights, cacheDir });
  await b.close();
  assert.equal(a.origin, 'converted');
  assert.equal(b.origin, 'cached');
  assert.equal(a.modelPath, b.modelPath);
});
