/** safetensors reader: round trips in every float dtype, and bad or hostile headers. */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { detectFormat, readWeights } from '../src/weights/formats.js';
import { halfToNumber } from '../src/util/float16.js';
import { MAX_HEADER_BYTES, sniffSafetensors } from '../src/weights/safetensors.js';
import type { WeightSet } from '../src/weights/types.js';
import { assertSameWeights } from './fixtures/compare-weights.js';
import { randomWeights, TINY_WIDTHS } from './fixtures/random-weights.js';
import {
  roundTo,
  toHalfBits,
  writeSafetensors,
  type SafetensorsDtype,
  type SafetensorsWriteOptions,
} from './fixtures/safetensors-writer.js';
import { GOLDEN_DIR, runCli, tempDir } from './helpers.js';
import { readError } from './weights-check.js';

type T = { after(fn: () => void): void };
const tiny = (order: 'RGB' | 'BGR' = 'RGB', seed = 9) => randomWeights(TINY_WIDTHS, seed, order);

function rounded(w: WeightSet, dtype: SafetensorsDtype): WeightSet {
  return {
    ...w,
    layers: w.layers.map((l) => ({
      ...l,
      weight: { ...l.weight, data: roundTo(dtype, l.weight.data) },
      bias: { ...l.bias, data: roundTo(dtype, l.bias.data) },
    })),
  };
}

/** A safetensors file from a header object and data bytes. */
function file(header: unknown, data: Uint8Array = new Uint8Array(0), length?: number | bigint): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(length ?? json.length));
  return Buffer.concat([prefix, json, data]);
}

const errorOf = (t: T, bytes: Uint8Array, namesFile = true) =>
  readError(t, bytes, 'safetensors', 'bad.safetensors', {}, namesFile);

describe('safetensors round trip', () => {
  const variants: [string, SafetensorsWriteOptions][] = [
    ['F32 (as model.safetensors)', {}],
    ['F16', { dtype: 'F16' }],
    ['BF16', { dtype: 'BF16' }],
    ['F64', { dtype: 'F64' }],
    ['F32 with __metadata__ and an unaligned data section', { metadata: { format: 'pt', note: 'test' }, align: false }],
  ];
  for (const [name, options] of variants) {
    it(`reads back exactly what was written: ${name}`, async (t) => {
      const dtype = options.dtype ?? 'F32';
      const input = rounded(tiny(), dtype);
      const path = join(tempDir(t), 'model.safetensors');
      writeSafetensors(path, input, options);
      assert.equal(await detectFormat(path), 'safetensors');
      const { weights } = await readWeights(path);
      assert.equal(weights.inputChannelOrder, 'RGB');
      assert.equal(weights.sourceDtype, { F32: 'float32', F16: 'float16', BF16: 'bfloat16', F64: 'float64' }[dtype]);
      assertSameWeights(weights, input);
    });
  }

  it('views aligned F32 data in the file buffer; copies only when the data section is unaligned', async (t) => {
    const dir = tempDir(t);
    for (const align of [true, false]) {
      const path = join(dir, `${align}.safetensors`);
      writeSafetensors(path, tiny(), { align });
      const { weights } = await readWeights(path);
      const buffers = new Set(weights.layers.map((l) => l.weight.data.buffer));
      if (align) {
        assert.equal(buffers.size, 1);
        assert.equal([...buffers][0].byteLength, readFileSync(path).length);
      } else {
        assert.equal(buffers.size, weights.layers.length);
      }
    }
  });

  it('writes BGR weights as RGB and reads them back as RGB', async (t) => {
    const input = tiny('BGR');
    const path = join(tempDir(t), 'model.safetensors');
    writeSafetensors(path, input);
    const { weights } = await readWeights(path);
    assert.equal(weights.inputChannelOrder, 'RGB');
    assertSameWeights(weights, input);
  });

  it('widens float16 exactly, subnormals and extremes included', () => {
    for (const [bits, value] of [
      [0x3c00, 1],
      [0xc000, -2],
      [0x7bff, 65504],
      [0x0001, 2 ** -24],
      [0x0400, 2 ** -14],
      [0x8000, -0],
      [0x7c00, Infinity],
      [0x3555, 0.333251953125],
    ] as const) {
      assert.equal(halfToNumber(bits), value, `0x${bits.toString(16)}`);
      assert.equal(toHalfBits(value), bits, `${value}`);
    }
    assert.ok(Number.isNaN(halfToNumber(0x7e00)));
  });

  it('orders layers by VGG-Face name whatever the header order, and other names naturally', async (t) => {
    const input = tiny();
    const names = input.layers.map((l) => l.name);
    const header: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    let offset = 0;
    const add = (name: string, shape: readonly number[], data: Float32Array) => {
      header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + data.byteLength] };
      chunks.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      offset += data.byteLength;
    };
    for (const l of [...input.layers].reverse()) {
      add(`${l.name}.bias`, l.bias.shape, l.bias.data);
      add(`${l.name}.weight`, l.weight.shape, l.weight.data);
    }
    const path = join(tempDir(t), 'reversed.safetensors');
    writeFileSync(path, file(header, Buffer.concat(chunks)));
    assertSameWeights((await readWeights(path)).weights, input);

    // torchvision-style names: features.0 ... features.28, classifier.0/3/6 (natural order, not string order)
    const renamed: Record<string, unknown> = {};
    const convIndex = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];
    for (const [key, value] of Object.entries(header)) {
      const [layer, what] = key.split('.');
      const i = names.indexOf(layer as never);
      const prefix = i < 13 ? `features.${convIndex[i]}` : `classifier.${(i - 13) * 3}`;
      renamed[`${prefix}.${what}`] = value;
    }
    const path2 = join(tempDir(t), 'torchvision.safetensors');
    writeFileSync(path2, file(renamed, Buffer.concat(chunks)));
    const { weights } = await readWeights(path2);
    assert.deepEqual(
      weights.layers.map((l) => l.sourceName),
      [...convIndex.map((i) => `features.${i}`), 'classifier.0', 'classifier.3', 'classifier.6'],
    );
    assertSameWeights(weights, input);
  });
});

describe('safetensors bad files', () => {
  const f32 = (shape: number[], begin: number) => ({
    dtype: 'F32',
    shape,
    data_offsets: [begin, begin + 4 * shape.reduce((a, b) => a * b, 1)],
  });

  it('recognises the format by content, also a hostile header length, and nothing else', () => {
    assert.equal(sniffSafetensors(readFileSync(join(GOLDEN_DIR, 'model.safetensors')).subarray(0, 4096), 171408), true);
    assert.equal(sniffSafetensors(file({}, new Uint8Array(0), 2n ** 60n), 100), true);
    assert.equal(sniffSafetensors(readFileSync(join(GOLDEN_DIR, 'VGG_FACE.t7')).subarray(0, 4096), 199073), false);
    assert.equal(sniffSafetensors(Buffer.from('{"a": 1}'), 8), false);
  });

  it('refuses a header length over the limit before reading it, and one past the end of the file', async (t) => {
    const huge = await errorOf(t, file({}, new Uint8Array(0), 2n ** 40n));
    assert.equal(huge.code, 'E_UNSAFE');
    assert.match(
      huge.message,
      new RegExp(
        'safetensors header length 1099511627776 exceeds ' +
          `the ${MAX_HEADER_BYTES}-byte limit \\(corrupt or hostile file\\)$`,
      ),
    );
    const past = await errorOf(t, file({}, new Uint8Array(0), 5000));
    assert.match(past.message, /truncated: safetensors header length 5000 runs past the end of the file \(10 bytes\)$/);
    assert.match(
      (await errorOf(t, Buffer.from([1, 0, 0]))).message,
      /truncated: 3 bytes, a safetensors file starts with an 8-byte header length$/,
    );
    const golden = readFileSync(join(GOLDEN_DIR, 'model.safetensors'));
    assert.match(
      (await errorOf(t, golden.subarray(0, golden.length - 1))).message,
      /tensor "fc8\.bias": data_offsets \[\d+, \d+\] out of range: the data section has \d+ bytes$/,
    );
  });

  it('refuses headers that are not JSON objects', async (t) => {
    assert.match((await errorOf(t, file('{"a": '))).message, /safetensors header is not valid UTF-8 JSON: /);
    assert.match((await errorOf(t, file('{"\xff"}'.replace('\xff', '\u00ff')))).message, /not valid UTF-8 JSON/);
    assert.match((await errorOf(t, file('[1, 2]'))).message, /safetensors header must be a JSON object of tensors$/);
    assert.match(
      (await errorOf(t, file({ x: 3 }))).message,
      /tensor "x": expected an object with dtype, shape and data_offsets$/,
    );
    assert.match(
      (await errorOf(t, file({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }))).message,
      /tensor "x": shape must be an array of non-negative integers$/,
    );
    assert.match(
      (await errorOf(t, file({ x: { dtype: 'F32', shape: [1], data_offsets: [0] } }))).message,
      /tensor "x": data_offsets must be \[begin, end\], two non-negative integers$/,
    );
  });

  it('refuses out-of-range, overlapping and mis-sized data offsets', async (t) => {
    const data = new Uint8Array(64);
    assert.match(
      (await errorOf(t, file({ a: f32([4], 60) }, data))).message,
      /tensor "a": data_offsets \[60, 76\] out of range: the data section has 64 bytes$/,
    );
    assert.match(
      (await errorOf(t, file({ a: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, data))).message,
      /tensor "a": data_offsets \[8, 4\] out of range/,
    );
    assert.match(
      (await errorOf(t, file({ a: f32([8], 0), b: f32([4], 16) }, data))).message,
      /tensors "a" and "b" overlap \(data_offsets \[0, 32\] and \[16, 32\]\)$/,
    );
    assert.match(
      (await errorOf(t, file({ a: f32([8], 0), e: f32([0], 4), b: f32([2], 24) }, data))).message,
      /tensors "a" and "b" overlap/,
    );
    assert.match(
      (await errorOf(t, file({ a: { dtype: 'F32', shape: [3, 3], data_offsets: [0, 32] } }, data))).message,
      /tensor "a": shape \[3, 3\] of F32 needs 36 bytes, data_offsets \[0, 32\] span 32$/,
    );
  });

  it('refuses unknown dtypes, and non-float weights', async (t) => {
    const data = new Uint8Array(64);
    assert.match(
      (await errorOf(t, file({ a: { dtype: 'F33', shape: [1], data_offsets: [0, 4] } }, data))).message,
      // line-width: regex
      /tensor "a": unknown dtype "F33"; safetensors defines F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U64, U32, U16, U8, BOOL$/,
    );
    const ints = await errorOf(
      t,
      file(
        { 'conv1_1.weight': { dtype: 'I64', shape: [2], data_offsets: [0, 16] }, 'conv1_1.bias': f32([1], 16) },
        data,
      ),
    );
    assert.match(ints.message, /tensor "conv1_1\.weight" has dtype I64; weights must be F32, F16, BF16, F64$/);
  });

  it('names missing biases and tensors of the wrong rank or topology', async (t) => {
    const data = new Uint8Array(4096);
    const noBias = await errorOf(t, file({ 'conv1_1.weight': f32([4, 3, 3, 3], 0) }, data));
    assert.equal(noBias.code, 'E_TOPOLOGY');
    assert.match(noBias.message, /conv1_1\.weight has no conv1_1\.bias$/);
    const rank = await errorOf(t, file({ 'conv1_1.weight': f32([4, 3, 9], 0), 'conv1_1.bias': f32([4], 432) }, data));
    assert.match(
      rank.message,
      /conv1_1\.weight has shape 4x3x9; expected a conv weight \(out, in, kh, kw\) or an fc weight \(out, in\)$/,
    );
    const few = await errorOf(t, file({ 'conv1_1.weight': f32([4, 3, 3, 3], 0), 'conv1_1.bias': f32([4], 432) }, data));
    assert.match(
      few.message,
      /VGG-Face has 13 conv layers then 3 fc layers with weights, file has 1 conv and 0 fc: conv1_1 \(conv 4x3x3x3\)$/,
    );
    const w = tiny();
    const layers = w.layers.map((l) =>
      l.name === 'fc7' ? { ...l, weight: { shape: [32, 31], data: new Float32Array(32 * 31) } } : l,
    );
    const path = join(tempDir(t), 'chain.safetensors');
    writeSafetensors(path, { ...w, layers });
    assert.match((await errorOf(t, readFileSync(path), false)).message, /fc7: expects 32 inputs from fc6, file has 31/);
  });

  it('vggface inspect names an oversized header', async (t) => {
    const path = join(tempDir(t), 'model.safetensors');
    writeFileSync(path, file({}, new Uint8Array(0), 2n ** 40n));
    const r = await runCli(['inspect', path]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /safetensors header length 1099511627776 exceeds the 104857600-byte limit/);
  });
});
