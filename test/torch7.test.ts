/** Torch7 reader: round trips through the fixture writer in every storage layout, and bad files. */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { VggFaceError } from '../src/errors.js';
import { detectFormat, readWeights } from '../src/weights/formats.js';
import { parseTorch7 } from '../src/weights/torch7.js';
import { sniffTorch7 } from '../src/weights/torch7-file.js';
import type { WeightSet } from '../src/weights/types.js';
import { assertSameWeights } from './fixtures/compare-weights.js';
import { randomWeights, TINY_WIDTHS } from './fixtures/random-weights.js';
import { writeTorch7, type Torch7WriteOptions } from './fixtures/torch7-writer.js';
import { GOLDEN_DIR, runCli, tempDir } from './helpers.js';
import { readError } from './weights-check.js';

const tiny = (order: 'RGB' | 'BGR' = 'BGR', seed = 3) => randomWeights(TINY_WIDTHS, seed, order);

async function roundTrip(
  t: { after(fn: () => void): void },
  options: Torch7WriteOptions,
  weights = tiny(),
): Promise<WeightSet> {
  const path = join(tempDir(t), 'model.t7');
  writeTorch7(path, weights, options);
  assert.equal(await detectFormat(path), 'torch7');
  return (await readWeights(path)).weights;
}

const int32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return b;
};
const str = (s: string) => Buffer.concat([int32(Buffer.byteLength(s)), Buffer.from(s)]);
const float64 = (v: number) => {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(v);
  return b;
};

/**
 * Reads `bytes` as a Torch7 file (format forced) and returns the error it raises, which names the file
 * (except the width checks of src/weights/topology.ts, which name the layer).
 */
const errorOf = (t: { after(fn: () => void): void }, bytes: Uint8Array, options = {}, namesFile = true) =>
  readError(t, bytes, 'torch7', 'bad.t7', options, namesFile);

function tinyFile(t: { after(fn: () => void): void }, options: Torch7WriteOptions = {}, weights = tiny()): Buffer {
  const path = join(tempDir(t), 'model.t7');
  writeTorch7(path, weights, options);
  return readFileSync(path);
}

/** Replaces the first occurrence of `from` by `to` (same length). */
function patch(bytes: Buffer, from: string, to: string): Buffer {
  assert.equal(from.length, to.length);
  const at = bytes.indexOf(from);
  assert.ok(at >= 0, `${from} not found`);
  const out = Buffer.from(bytes);
  out.write(to, at, 'latin1');
  return out;
}

describe('torch7 round trip', () => {
  const variants: [string, Torch7WriteOptions][] = [
    ['SpatialConvolutionMM 2-D weights, 8-byte longs (as VGG_FACE.t7)', {}],
    ['4-byte longs, detected', { longSize: 4 }],
    ['SpatialConvolutionMM with 4-D weights', { conv: 'mm-4d' }],
    ['nn.SpatialConvolution, class names without version headers', { conv: 'spatial', legacyHeaders: true }],
    ['DoubleStorage', { double: true }],
    ['one shared flattened storage (getParameters), views at offsets', { sharedStorage: true }],
    ['non-contiguous (transposed) nn.Linear weights', { transposedLinear: true }],
    [
      'everything at once with 4-byte longs',
      { longSize: 4, double: true, sharedStorage: true, transposedLinear: true, conv: 'mm-4d' },
    ],
  ];
  for (const [name, options] of variants) {
    it(`reads back exactly what was written: ${name}`, async (t) => {
      const input = tiny();
      const output = await roundTrip(t, options, input);
      assert.equal(output.format, 'torch7');
      assert.equal(output.inputChannelOrder, 'BGR');
      assert.equal(output.sourceDtype, options.double ? 'float64' : 'float32');
      assert.match(output.layout, new RegExp(`\\(${options.longSize ?? 8}-byte longs\\)`));
      assertSameWeights(output, input);
    });
  }

  it('writes RGB weights as BGR (conv1_1 input channels reversed) and reads them back as BGR', async (t) => {
    const input = tiny('RGB');
    const output = await roundTrip(t, {}, input);
    assert.equal(output.inputChannelOrder, 'BGR');
    assertSameWeights(output, input);
    assert.notDeepEqual(output.layers[0].weight.data, input.layers[0].weight.data);
  });

  it('views float storages in the file buffer instead of copying them, aligned or not', async (t) => {
    const path = join(tempDir(t), 'model.t7');
    writeTorch7(path, tiny());
    const { weights } = await readWeights(path);
    const buffers = new Set(weights.layers.flatMap((l) => [l.weight.data.buffer, l.bias.data.buffer]));
    assert.equal(buffers.size, 1, 'every tensor is a view of the one buffer the file was read into');
    assert.equal([...buffers][0].byteLength, readFileSync(path).length);
    // The writer's storages start at every offset modulo 4, so some views needed the in-place realignment.
    const bytes = readFileSync(path);
    const misaligned = new Set<number>();
    for (let at = bytes.indexOf('torch.FloatStorage'); at >= 0; at = bytes.indexOf('torch.FloatStorage', at + 1))
      misaligned.add((at + 18 + 8) % 4);
    assert.deepEqual([...misaligned].sort(), [0, 1, 2, 3]);
  });

  it('takes the long width from ReadOptions.longSize, and fails clearly with the wrong one', async (t) => {
    const dir = tempDir(t);
    const four = join(dir, 'four.t7');
    const eight = join(dir, 'eight.t7');
    const input = tiny();
    writeTorch7(four, input, { longSize: 4 });
    writeTorch7(eight, input, { longSize: 8 });
    assertSameWeights((await readWeights(four, 'torch7', { longSize: 4 })).weights, input);
    assertSameWeights((await readWeights(eight, 'torch7', { longSize: 8 })).weights, input);
    await assert.rejects(
      readWeights(four, 'torch7', { longSize: 8 }),
      (e: VggFaceError) => e.code === 'E_FORMAT' && e.message.startsWith(`${four}: `),
    );
    await assert.rejects(
      readWeights(eight, 'torch7', { longSize: 4 }),
      (e: VggFaceError) => e.code === 'E_FORMAT' && e.message.startsWith(`${eight}: `),
    );
  });

  it('reads the golden file with 8-byte longs named in the layout', () => {
    const { weights, longSize } = parseTorch7(readFileSync(join(GOLDEN_DIR, 'VGG_FACE.t7')), 'VGG_FACE.t7');
    assert.equal(longSize, 8);
    assert.equal(weights.layers[13].sourceName, 'module 33 (nn.Linear)');
    assert.equal(weights.layers[0].sourceName, 'module 1 (nn.SpatialConvolutionMM)');
  });
});

describe('torch7 bad files', () => {
  it('recognises binary and ASCII Torch7 by content, and nothing else', () => {
    assert.equal(sniffTorch7(readFileSync(join(GOLDEN_DIR, 'VGG_FACE.t7')).subarray(0, 4096)), true);
    assert.equal(sniffTorch7(Buffer.from('4\n1\n3\nV 1\n13\nnn.Sequential\n')), true);
    assert.equal(sniffTorch7(readFileSync(join(GOLDEN_DIR, 'model.safetensors')).subarray(0, 4096)), false);
    assert.equal(sniffTorch7(readFileSync(join(GOLDEN_DIR, 'VGG_FACE.caffemodel')).subarray(0, 4096)), false);
    assert.equal(sniffTorch7(Buffer.alloc(64)), false);
  });

  it('refuses a truncated file, naming where it ends', async (t) => {
    const golden = readFileSync(join(GOLDEN_DIR, 'VGG_FACE.t7'));
    const half = await errorOf(t, golden.subarray(0, golden.length >> 1));
    assert.match(
      half.message,
      // line-width: regex
      /torch\.FloatStorage at byte \d+ declares \d+ elements \(\d+ bytes\), only \d+ bytes remain \(truncated or corrupt file\)$/,
    );
    const head = await errorOf(t, golden.subarray(0, 6));
    assert.match(head.message, /truncated: object index needs 4 bytes at byte 4, the file has 6$/);
    const lastByte = await errorOf(t, golden.subarray(0, golden.length - 1));
    assert.match(lastByte.message, /truncated/);
  });

  it('refuses a string that declares more bytes than the file has, before allocating it', async (t) => {
    const err = await errorOf(t, Buffer.concat([int32(4), int32(1), int32(0x7fffffff), Buffer.from('V 1')]));
    assert.match(
      err.message,
      /class header declares 2147483647 bytes at byte 8, only 3 remain \(truncated or corrupt file\)$/,
    );
  });

  it('refuses a storage that declares more elements than the file has', async (t) => {
    const bytes = tinyFile(t);
    const at = bytes.indexOf('torch.FloatStorage') + 'torch.FloatStorage'.length;
    bytes.writeBigInt64LE(2n ** 40n, at);
    const err = await errorOf(t, bytes);
    assert.match(
      err.message,
      /torch\.FloatStorage at byte \d+ declares 1099511627776 elements \(4398046511104 bytes\), only \d+ bytes remain/,
    );
  });

  it('refuses a tensor whose sizes and strides reach past its storage', async (t) => {
    const bytes = tinyFile(t);
    const at = bytes.indexOf('torch.FloatTensor') + 'torch.FloatTensor'.length;
    assert.equal(bytes.readInt32LE(at), 2); // conv1_1's (out, in*kh*kw) weight
    bytes.writeBigInt64LE(1000n, at + 4); // out: 4 -> 1000
    const err = await errorOf(t, bytes);
    assert.match(
      err.message,
      /torch\.FloatTensor at byte \d+ \(1000x27, strides 27,1, offset 1\) reaches element 27000 of a storage of 108$/,
    );
  });

  it('refuses serialized Lua functions without running anything', async (t) => {
    for (const type of [6, 7, 8]) {
      const bytes = Buffer.concat([
        int32(3),
        int32(1),
        int32(1),
        int32(2),
        str('f'),
        int32(type),
        str('\x1bLua bytecode'),
      ]);
      const err = await errorOf(t, bytes);
      assert.equal(err.code, 'E_UNSAFE');
      assert.match(
        err.message,
        new RegExp(
          `contains a serialized Lua function \\(type ${type}, byte 21\\); ` +
            'functions are refused because loading one runs its code$',
        ),
      );
    }
  });

  it('refuses unknown type codes and runaway nesting', async (t) => {
    const unknown = await errorOf(t, Buffer.concat([int32(4), int32(1), str('V 1'), str('nn.Sequential'), int32(42)]));
    assert.match(unknown.message, /unknown Torch7 type code 42 \(byte 32\)$/);
    const nested: Buffer[] = [];
    for (let i = 1; i <= 300; i++) nested.push(int32(3), int32(i), int32(1), int32(1), float64(1));
    const deep = await errorOf(t, Buffer.concat(nested));
    assert.match(deep.message, /objects nested deeper than 200 levels/);
    const hugeTable = await errorOf(t, Buffer.concat([int32(3), int32(1), int32(1e9)]));
    assert.match(hugeTable.message, /table declares 1000000000 entries at byte 8, only 0 bytes remain/);
  });

  it('refuses the ASCII serialization with what to do instead', async (t) => {
    const err = await errorOf(t, Buffer.from('4\n1\n3\nV 1\n13\nnn.Sequential\n3\n2\n'));
    assert.match(err.message, /Torch7 ASCII serialization is not supported; save the model in binary form/);
  });

  it('names modules and layers that do not fit VGG-Face', async (t) => {
    const bytes = tinyFile(t);
    const unknown = await errorOf(t, patch(bytes, 'nn.SpatialConvolutionMM', 'nn.SpatialConvolutionXX'));
    assert.equal(unknown.code, 'E_TOPOLOGY');
    assert.match(unknown.message, /module 1 is nn\.SpatialConvolutionXX with weights, which VGG-Face does not have/);
    const softmix = await errorOf(t, patch(bytes, 'nn.SoftMax', 'nn.SoftMix'));
    assert.match(softmix.message, /module 40 is nn\.SoftMix, which VGG-Face does not have/);
    const concat = await errorOf(t, patch(bytes, 'nn.Sequential', 'nn.Concatenat'));
    assert.match(concat.message, /the saved object is a nn\.Concatenat container; VGG-Face is a plain nn\.Sequential/);

    const padAt = bytes.indexOf('padW') + 4;
    const padded = Buffer.from(bytes);
    assert.equal(padded.readInt32LE(padAt), 1); // number
    padded.writeDoubleLE(2, padAt + 4);
    const pad = await errorOf(t, padded);
    assert.match(pad.message, /module 1 \(nn\.SpatialConvolutionMM\) has padW 2; VGG-Face convolutions have padW 1$/);
  });

  it('reports a broken width chain with the layer names', async (t) => {
    const w = tiny();
    const layers = w.layers.map((l) =>
      l.name === 'conv1_2'
        ? {
            ...l,
            weight: { shape: [5, 4, 3, 3], data: new Float32Array(5 * 36) },
            bias: { shape: [5], data: new Float32Array(5) },
          }
        : l,
    );
    const err = await errorOf(t, tinyFile(t, {}, { ...w, layers }), {}, false);
    assert.equal(err.code, 'E_TOPOLOGY');
    assert.match(err.message, /conv2_1: expects 5 input channels from conv1_2, file has 4/);
  });

  it('vggface inspect exits 1 with the message on a truncated file', async (t) => {
    const path = join(tempDir(t), 'VGG_FACE.t7');
    const golden = readFileSync(join(GOLDEN_DIR, 'VGG_FACE.t7'));
    writeFileSync(path, golden.subarray(0, 5000));
    const r = await runCli(['inspect', path]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^vggface: ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*truncated`));
  });
});
