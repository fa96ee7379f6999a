/** MatConvNet reader (MAT-file v5): round trips through the fixture writer in both variants, and bad files. */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { deflateSync } from 'node:zlib';
import type { VggFaceError } from '../src/errors.js';
import { detectFormat, readWeights } from '../src/weights/formats.js';
import { colMajorHwioToOihwInPlace } from '../src/weights/layout.js';
import { readMatFile } from '../src/weights/mat5.js';
import { matconvnetReader } from '../src/weights/matconvnet.js';
import { VGG_FACE_MEAN_RGB } from '../src/weights/types.js';
import { assertSameWeights } from './fixtures/compare-weights.js';
import { writeMatConvNet, type MatConvNetWriteOptions } from './fixtures/matconvnet-writer.js';
import { randomWeights, TINY_WIDTHS } from './fixtures/random-weights.js';
import { GOLDEN_DIR, runCli, tempDir } from './helpers.js';
import { readError } from './weights-check.js';

type T = { after(fn: () => void): void };
const tiny = (order: 'RGB' | 'BGR' = 'RGB', seed = 5) => randomWeights(TINY_WIDTHS, seed, order);

async function tinyFile(
  t: T,
  options: MatConvNetWriteOptions = {},
  weights = tiny(),
): Promise<{ path: string; bytes: Buffer }> {
  const path = join(tempDir(t), 'net.mat');
  await writeMatConvNet(path, weights, options);
  return { path, bytes: readFileSync(path) };
}

const errorOf = (t: T, bytes: Uint8Array, namesFile = true) =>
  readError(t, bytes, 'matconvnet', 'bad.mat', {}, namesFile);

function header(text = 'MATLAB 5.0 MAT-file, Platform: test', endian = 'IM'): Buffer {
  const h = Buffer.alloc(128, ' ');
  h.write(text, 0, 'latin1');
  h.fill(0, 116, 124);
  h.writeUInt16LE(0x0100, 124);
  h.write(endian, 126, 'latin1');
  return h;
}

const u32 = (...values: number[]) => {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeUInt32LE(v >>> 0, i * 4));
  return b;
};

/** Replaces every occurrence of `from` (as MATLAB's UTF-16 char data) by `to` of the same length. */
function patchChars(bytes: Buffer, from: string, to: string): Buffer {
  const needle = Buffer.from(from, 'utf16le');
  const out = Buffer.from(bytes);
  let n = 0;
  for (let at = out.indexOf(needle); at >= 0; at = out.indexOf(needle, at + 1), n++) out.write(to, at, 'utf16le');
  assert.ok(n > 0, `${from} not found`);
  return out;
}

describe('matconvnet round trip', () => {
  const variants: [string, MatConvNetWriteOptions][] = [
    ['layers + meta variables, compressed (as vgg-face.mat)', {}],
    ['struct net with meta, compressed (as vgg_face.mat)', { variant: 'net' }],
    ['struct net with older fields (filters/biases, net.normalization)', { variant: 'net', legacyFields: true }],
    ['uncompressed elements', { compress: false }],
    ['zlib level 9', { level: 9 }],
    ['double filters and biases', { double: true }],
    ['big-endian file', { bigEndian: true }],
    [
      'big-endian, double, uncompressed, legacy net',
      { bigEndian: true, double: true, compress: false, variant: 'net', legacyFields: true },
    ],
  ];
  for (const [name, options] of variants) {
    it(`reads back exactly what was written: ${name}`, async (t) => {
      const input = tiny();
      const { path } = await tinyFile(t, options, input);
      assert.equal(await detectFormat(path), 'matconvnet');
      const { weights } = await readWeights(path);
      assert.equal(weights.format, 'matconvnet');
      assert.equal(weights.inputChannelOrder, 'RGB');
      assert.equal(weights.sourceDtype, options.double ? 'float64' : 'float32');
      assert.match(
        weights.layout,
        (options.variant ?? 'layers-meta') === 'net' ? /struct net/ : /variables layers \+ meta/,
      );
      assert.equal(/zlib-compressed/.test(weights.layout), options.compress !== false);
      assert.deepEqual(
        weights.mean,
        [...VGG_FACE_MEAN_RGB].map((v) => Math.fround(v)),
      );
      assertSameWeights(weights, input);
    });
  }

  it('writes BGR weights as RGB and reads them back as RGB', async (t) => {
    const input = tiny('BGR');
    const { path } = await tinyFile(t, {}, input);
    const { weights } = await readWeights(path);
    assert.equal(weights.inputChannelOrder, 'RGB');
    assertSameWeights(weights, input);
  });

  it('takes the mean from averageImage: channel means, the mean of a full image, or none', async (t) => {
    const mean = [120.5, 110.25, 100.125] as const;
    for (const [averageImage, expected] of [
      ['channels', mean],
      ['image', mean],
      ['none', undefined],
    ] as const) {
      const { path } = await tinyFile(t, { averageImage, mean });
      const { weights } = await readWeights(path);
      assert.deepEqual(weights.mean, expected, averageImage);
    }
    const legacy = await tinyFile(t, { variant: 'net', legacyFields: true, mean });
    assert.deepEqual((await readWeights(legacy.path)).weights.mean, mean);
  });

  it('reads MATLAB small data elements and integer-typed doubles (sizes, pads) as their values', async (t) => {
    const { path } = await tinyFile(t);
    const mat = await readMatFile(path);
    const layers = mat.variables.get('layers');
    assert.ok(layers?.kind === 'cell');
    const conv = layers.items[0];
    assert.ok(conv.kind === 'struct');
    const size = conv.items[0].get('size');
    assert.ok(size?.kind === 'numeric');
    assert.equal(size.className, 'double');
    assert.equal(size.real.type, 2); // miUINT8: MATLAB stores small whole doubles as the smallest integer type
    const fc6 = layers.items[31];
    assert.ok(fc6.kind === 'struct');
    const fc6Size = fc6.items[0].get('size');
    assert.ok(fc6Size?.kind === 'numeric');
    assert.equal(fc6Size.dims.join('x'), '1x4');
    const name = conv.items[0].get('name');
    assert.deepEqual(name, { kind: 'char', dims: [1, 7], text: 'conv1_1' });
    const precious = conv.items[0].get('precious');
    assert.ok(precious?.kind === 'numeric' && precious.className === 'uint8' && precious.real.byteLength === 1);
  });

  it('transposes column-major kernels in place', () => {
    // A 2x3 kernel, 1 in, 1 out, column-major: (y, x) at y + 2x.
    const data = Float32Array.from([11, 21, 12, 22, 13, 23]);
    const t = colMajorHwioToOihwInPlace(data, 2, 3, 1, 1);
    assert.equal(t.data, data);
    assert.deepEqual([...t.data], [11, 12, 13, 21, 22, 23]);
    assert.deepEqual(t.shape, [1, 1, 2, 3]);
  });
});

describe('matconvnet bad files', () => {
  it('recognises v5 and v7.3 headers by content, and nothing else', () => {
    assert.equal(matconvnetReader.sniff(readFileSync(join(GOLDEN_DIR, 'vgg-face.mat')).subarray(0, 4096), 1e6), true);
    assert.equal(
      matconvnetReader.sniff(header('MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: x HDF5 schema 1.00 .'), 1e6),
      true,
    );
    assert.equal(matconvnetReader.sniff(readFileSync(join(GOLDEN_DIR, 'VGG_FACE.t7')).subarray(0, 4096), 1e6), false);
    assert.equal(matconvnetReader.sniff(header('MATLAB 5.0 MAT-file', 'XX'), 1e6), false);
  });

  it('refuses a v7.3 (HDF5) file with the command that converts it', async (t) => {
    const v73 = Buffer.alloc(1024);
    header('MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .').copy(v73);
    Buffer.from('\x89HDF\r\n\x1a\n', 'latin1').copy(v73, 512);
    const path = join(tempDir(t), 'vgg_face_v73.mat');
    writeFileSync(path, v73);
    assert.equal(await detectFormat(path), 'matconvnet');
    const err = await readWeights(path).then(
      () => assert.fail('expected an error'),
      (e: VggFaceError) => e,
    );
    assert.equal(err.code, 'E_FORMAT');
    assert.equal(
      err.message,
      `${path}: MATLAB v7.3 MAT-file (HDF5 inside) is not supported; save it again as a v7 MAT-file, e.g. in ` +
        `MATLAB or Octave: s = load('${path}'); save('converted.mat', '-struct', 's', '-v7')`,
    );
    const cli = await runCli(['inspect', path]);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /MATLAB v7\.3 MAT-file \(HDF5 inside\) is not supported; save it again as a v7 MAT-file/);
  });

  it('refuses wrong headers', async (t) => {
    assert.match(
      (await errorOf(t, header('MATLAB 5.0 MAT-file', 'XX'))).message,
      /bad MAT-file endian indicator "XX" \(expected "IM" or "MI"\)$/,
    );
    assert.match(
      (await errorOf(t, header('Octave binary data'))).message,
      /not a MAT-file v5: the header text starts "Octave binary data", expected "MATLAB 5.0 MAT-file"$/,
    );
    assert.match(
      (await errorOf(t, header().subarray(0, 100))).message,
      /truncated: 100 bytes, a MAT-file starts with a 128-byte header$/,
    );
    const v2 = header();
    v2.writeUInt16LE(0x0200, 124);
    assert.match((await errorOf(t, v2)).message, /unsupported MAT-file version 0x200 \(expected 0x0100\)$/);
  });

  it('refuses truncated and corrupt files', async (t) => {
    const golden = readFileSync(join(GOLDEN_DIR, 'vgg-face.mat'));
    const cut = await errorOf(t, golden.subarray(0, 50_000));
    assert.match(
      cut.message,
      /truncated: the miCOMPRESSED element at byte 128 declares 158216 bytes, only 49864 remain$/,
    );
    const corrupt = Buffer.from(golden);
    corrupt.fill(0xff, 200, 260);
    assert.match(
      (await errorOf(t, corrupt)).message,
      /compressed element at byte 128: zlib: .+ \(truncated or corrupt file\)$/,
    );
    const stray = await errorOf(t, Buffer.concat([golden, Buffer.from([1, 2, 3])]));
    assert.match(stray.message, /truncated: 3 stray bytes at byte 158723, an element tag needs 8$/);
    // A zlib stream that ends early: the inner miMATRIX declares more than arrives.
    const short = Buffer.concat([u32(14, 1000), Buffer.alloc(100)]);
    const deflated = deflateSync(short);
    const shortFile = await errorOf(t, Buffer.concat([header(), u32(15, deflated.length), deflated]));
    assert.match(
      shortFile.message,
      /truncated: compressed element at byte 128 inflates to 108 bytes, its miMATRIX declares 1008$/,
    );
  });

  it('stops a zlib bomb at its declared size, and refuses sizes zlib cannot produce', async (t) => {
    // 64 MB of zeros deflate to about 64 kB; the element claims 1 kB.
    const bomb = deflateSync(Buffer.concat([u32(14, 1016), Buffer.alloc(64 << 20)]), { level: 9 });
    const err = await errorOf(t, Buffer.concat([header(), u32(15, bomb.length), bomb]));
    assert.equal(err.code, 'E_UNSAFE');
    assert.match(
      err.message,
      /compressed element at byte 128 inflates past its declared 1024 bytes \(zlib bomb or corrupt file\)$/,
    );
    const liar = deflateSync(u32(14, 0xfffffff0));
    const huge = await errorOf(t, Buffer.concat([header(), u32(15, liar.length), liar]));
    assert.equal(huge.code, 'E_UNSAFE');
    assert.match(
      huge.message,
      new RegExp(
        `compressed element at byte 128 declares 4294967288 bytes from ${liar.length} compressed ` +
          'bytes, more than zlib can produce \\(zlib bomb or corrupt file\\)$',
      ),
    );
  });

  it('refuses structures whose declared sizes cannot fit', async (t) => {
    const { bytes } = await tinyFile(t, { compress: false });
    // The layers cell's dimensions follow the tag (8), array flags (16) and dimensions tag (8).
    const dimsAt = 128 + 8 + 16 + 8;
    assert.deepEqual([bytes.readInt32LE(dimsAt), bytes.readInt32LE(dimsAt + 4)], [1, 37]);
    const many = Buffer.from(bytes);
    many.writeInt32LE(100_000_000, dimsAt + 4);
    assert.match(
      (await errorOf(t, many)).message,
      /variable at byte 128: layers: cell array of 1x100000000 cannot fit in \d+ bytes \(byte 0 of the variable\)$/,
    );
    const big = Buffer.from(bytes);
    big.writeUInt32LE(0x7fffffff, 128 + 4);
    assert.match(
      (await errorOf(t, big)).message,
      /truncated: the miMATRIX element at byte 128 declares 2147483647 bytes, only \d+ remain$/,
    );
  });

  it('names what is missing or foreign in the network', async (t) => {
    const { bytes } = await tinyFile(t, { compress: false });
    const renamed = Buffer.from(bytes);
    renamed.write('layerz', renamed.indexOf('layers'), 'latin1');
    assert.match(
      (await errorOf(t, renamed)).message,
      // line-width: regex
      /not a MatConvNet network: expected variables layers and meta \(vgg-face\.mat\) or a struct net \(vgg_face\.mat\), the file has layerz \(1x37 cell\), meta \(1x1 struct\)$/,
    );
    const tanh = await errorOf(t, patchChars(bytes, 'relu', 'tanh'));
    assert.equal(tanh.code, 'E_TOPOLOGY');
    assert.match(
      tanh.message,
      /layer tanh1_1 has type tanh, which VGG-Face does not have \(expected conv, relu, pool, dropout, softmax\)$/,
    );
    const w = tiny();
    const layers = w.layers.map((l) =>
      l.name === 'conv3_3'
        ? {
            ...l,
            weight: { shape: [9, 8, 3, 3], data: new Float32Array(9 * 72) },
            bias: { shape: [9], data: new Float32Array(9) },
          }
        : l,
    );
    const chain = await tinyFile(t, {}, { ...w, layers });
    assert.match(
      (await errorOf(t, chain.bytes, false)).message,
      /conv4_1: expects 9 input channels from conv3_3, file has 8/,
    );
  });

  it('vggface inspect names a zlib bomb', async (t) => {
    const bomb = deflateSync(Buffer.concat([u32(14, 1016), Buffer.alloc(8 << 20)]));
    const path = join(tempDir(t), 'vgg-face.mat');
    writeFileSync(path, Buffer.concat([header(), u32(15, bomb.length), bomb]));
    const r = await runCli(['inspect', path]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /inflates past its declared 1024 bytes \(zlib bomb or corrupt file\)/);
  });
});
