/** Units of the fp16 and int8 builders and of calibration, on values worked out by hand. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeHalf, encodeHalf, halfToNumber, toHalf } from '../src/util/float16.js';
import { inputQuantization, quantizeBias, quantizePerChannel, WEIGHT_LIMIT } from '../src/onnx/quantize.js';
import {
  cpuFeatures,
  describeCpu,
  int8PairsSaturate,
  needsExactInt8Kernels,
  type CpuFeatures,
} from '../src/runtime/cpu.js';
import { ActivationHistogram, rangeFor, PERCENTILE } from '../src/onnx/calibrate.js';
import { deadLeavesImage } from '../src/image/synthetic.js';

test('float16: exact values, rounding to nearest even, overflow, subnormals; one number or an array alike', () => {
  const cases: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff], // largest finite half
    [65520, 0x7c00], // rounds up to infinity
    [Infinity, 0x7c00],
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // halfway to 0: ties to even (0)
    [3 * 2 ** -25, 0x0002], // 1.5 subnormal steps: ties to even (2)
    [2 ** -14, 0x0400], // smallest normal
    [1 + 2 ** -11, 0x3c00], // halfway between 1 and 1+2^-10: ties to even (1)
    [1 + 3 * 2 ** -11, 0x3c02], // halfway between 1+2^-10 and 1+2^-9: ties to even (1+2^-9)
    [1 / 3, 0x3555],
    [0.1, 0x2e66],
  ];
  const xs = cases.map((c) => c[0]);
  // A Float32Array is encoded from its bit patterns, a plain array number by number through toHalf: the same halves.
  const bits = encodeHalf(Float32Array.from(xs));
  const fromNumbers = encodeHalf(xs);
  cases.forEach(([x, h], i) => {
    assert.equal(bits[i], h, `float16(${x}) = 0x${bits[i].toString(16)}, expected 0x${h.toString(16)}`);
    assert.equal(fromNumbers[i], h, `encodeHalf([${x}]) = 0x${fromNumbers[i].toString(16)}`);
    assert.equal(toHalf(x), h, `toHalf(${x}) = 0x${toHalf(x).toString(16)}`);
  });
  assert.ok(Number.isNaN(halfToNumber(encodeHalf(Float32Array.of(NaN))[0])));
  assert.equal(halfToNumber(0x3555), 0.333251953125);
  assert.equal(halfToNumber(0x0001), 2 ** -24);
  // Decoding is exact, so a round trip is off by at most half a unit in the last place (2^-11 relative), or by half
  // the smallest subnormal.
  // biome-ignore lint/suspicious/noApproximativeNumericConstant: a value to round-trip, not pi
  const v = Float32Array.from([0.5, -0.25, 1e-5, 3.14159]);
  const back = decodeHalf(encodeHalf(v));
  v.forEach((x, i) => assert.ok(Math.abs(back[i] - x) <= Math.abs(x) * 2 ** -11 + 2 ** -25, `${x} -> ${back[i]}`));
});

test(
  'int8 weights: symmetric per output channel, max |w| maps ' +
    'to 64 (127 when asked), an all-zero channel stays zero',
  () => {
    const t = { shape: [3, 3], data: Float32Array.of(0.5, -0.64, 0.01, 0, 0, 0, 2, 1, -0.5) };
    const q = quantizePerChannel(t);
    assert.equal(WEIGHT_LIMIT, 64);
    assert.deepEqual(
      [...q.scales].map((s) => Number(s.toPrecision(6))),
      [0.01, 1, 0.03125],
    );
    assert.deepEqual([...q.data], [50, -64, 1, 0, 0, 0, 64, 32, -16]);
    // Builder 1's full range, kept for measuring it: 1/(2/127) = 63.5 rounds to 64; -31.75 to -32.
    const full = quantizePerChannel({ shape: [1, 3], data: Float32Array.of(2, 1, -0.5) }, 127);
    assert.deepEqual([...full.data], [127, 64, -32]);
  },
);

test('int8 weights never exceed -64..64, so two u8 x s8 products always fit the int16 of vpmaddubsw', () => {
  const data = new Float32Array(4096).map((_, i) => Math.sin(i * 1.7) * (1 + (i % 7)));
  const q = quantizePerChannel({ shape: [8, 512], data });
  let max = 0;
  for (const v of q.data) max = Math.max(max, Math.abs(v));
  assert.equal(max, 64);
  assert.ok(255 * 2 * max <= 32767, `255 x 2 x ${max} = ${255 * 2 * max}`);
});

test('CPU flags: VNNI or AMX sum int8 products exactly; AVX2 or AVX-512 alone saturate; ARM never does', () => {
  const info = (flags: string) =>
    `processor\t: 0\nflags\t\t: fpu sse2 ${flags} rdrand\n\nprocessor\t: 1\nflags\t\t: fpu\n`;
  const zen3 = cpuFeatures(info('avx avx2 fma'));
  assert.deepEqual(zen3.flags, ['avx2']);
  const zen5 = cpuFeatures(info('avx2 avx512f avx512bw avx512_vnni'));
  assert.deepEqual(zen5.flags, ['avx2', 'avx512f', 'avx512_vnni']);
  const skylake = cpuFeatures(info('avx2 avx512f avx512bw'));
  const alderLake = cpuFeatures(info('avx2 avx_vnni'));
  const x64 = (c: CpuFeatures): CpuFeatures => ({ ...c, arch: 'x64' });
  assert.equal(int8PairsSaturate(x64(zen3)), true);
  assert.equal(int8PairsSaturate(x64(skylake)), true);
  assert.equal(int8PairsSaturate(x64(zen5)), false);
  assert.equal(int8PairsSaturate(x64(alderLake)), false);
  assert.equal(int8PairsSaturate({ arch: 'x64', flags: undefined }), true); // unknown: the exact kernels, never wrong
  assert.equal(int8PairsSaturate({ arch: 'arm64', flags: [] }), false);
  // Only full-range weights need the exact kernels, and only where the CPU saturates.
  assert.equal(needsExactInt8Kernels(127, x64(zen3)), true);
  assert.equal(needsExactInt8Kernels(64, x64(zen3)), false);
  assert.equal(needsExactInt8Kernels(127, x64(zen5)), false);
  assert.equal(describeCpu(x64(zen5)), 'x64: avx2 avx512f avx512_vnni');
  assert.equal(describeCpu({ arch: 'x64', flags: [] }), 'x64: none of avx2, avx512f, avx512_vnni, avx_vnni, amx_int8');
});

test('int32 bias: divided by input scale x weight scale of its channel', () => {
  const b = quantizeBias(Float32Array.of(0.3, -0.05), 0.5, Float32Array.of(0.01, 0.1));
  assert.deepEqual([...b.data], [60, -1]); // 0.3 / 0.005 = 60; -0.05 / 0.05 = -1
  assert.deepEqual(
    [...b.scales].map((s) => Number(s.toPrecision(6))),
    [0.005, 0.05],
  );
});

test('input quantization covers exactly 0-255 minus the mean (caffe) or 0-1 (deepface)', () => {
  const mean = [129.1863, 104.7624, 93.594];
  const q = inputQuantization('caffe', mean);
  const lo = -129.1863;
  const hi = 255 - 93.594;
  assert.ok(Math.abs(q.scale - (hi - lo) / 255) < 1e-12);
  assert.equal(q.zeroPoint, Math.round(-lo / q.scale));
  assert.ok((0 - q.zeroPoint) * q.scale <= lo + q.scale / 2 && (255 - q.zeroPoint) * q.scale >= hi - q.scale / 2);
  assert.deepEqual(inputQuantization('deepface', mean), { scale: 1 / 255, zeroPoint: 0 });
});

test('activation histogram: grows without losing counts; minmax is the largest value', () => {
  const h = new ActivationHistogram();
  h.add(Float32Array.of(0, 0, 1, 2));
  h.add(Float32Array.of(100, 0.5, 0));
  assert.equal(h.total, 7);
  assert.equal(h.zeros, 3);
  assert.equal(h.max, 100);
  assert.equal(rangeFor(h, 'minmax'), 100);
  // 0.5, 1 and 2 are still apart after the bins widened to cover 100.
  assert.ok(h.width < 0.5, `bin width ${h.width}`);
});

test('percentile and entropy clip a lone outlier that minmax keeps, mse trades it against rounding', () => {
  const h = new ActivationHistogram();
  const values = new Float32Array(200_000);
  // half zeros, rest uniform on [0, 4)
  for (let i = 0; i < values.length; i++) values[i] = i % 2 ? (i / values.length) * 4 : 0;
  h.add(values);
  h.add(Float32Array.of(40)); // one outlier, 10x the rest
  assert.equal(rangeFor(h, 'minmax'), 40);
  // 99.99% of 200001 values lie below 4 * (1 - 0.0002): the percentile lands at the top of the uniform part.
  const p = rangeFor(h, 'percentile');
  assert.equal(PERCENTILE, 99.99);
  assert.ok(p > 3.9 && p < 4.5, `percentile range ${p}`);
  const e = rangeFor(h, 'entropy');
  assert.ok(e > 3.9 && e < 5, `entropy range ${e}`);
  // MSE weighs the outlier's squared clipping error against 100,000 rounding errors: it clips a little.
  const m = rangeFor(h, 'mse');
  assert.ok(m > 30 && m < 40, `mse range ${m}`);
});

test('an activation that never fired has range 0', () => {
  const h = new ActivationHistogram();
  h.add(new Float32Array(10));
  for (const m of ['minmax', 'percentile', 'entropy', 'mse'] as const) assert.equal(rangeFor(h, m), 0);
});

test('built-in calibration images are deterministic, vary, and use the whole 0-255 range', () => {
  const a = deadLeavesImage(1);
  assert.equal(a.length, 224 * 224 * 3);
  assert.deepEqual(deadLeavesImage(1), a);
  const b = deadLeavesImage(2);
  let differ = 0;
  let lo = 255;
  let hi = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) differ++;
    lo = Math.min(lo, a[i], b[i]);
    hi = Math.max(hi, a[i], b[i]);
  }
  assert.ok(differ > a.length * 0.9, `${differ} of ${a.length} bytes differ`);
  assert.ok(lo < 30 && hi > 225, `range ${lo}-${hi}`);
});
