/**
 * Activation-range calibration for the int8 model: the fp32 model (built with every conv activation as an
 * output) runs on the calibration images, each calibrated activation's values are gathered in a histogram, and a
 * method turns each histogram into the upper end of the uint8 range:
 * - `minmax`: the largest value seen;
 * - `percentile`: the 99.99th percentile of the values (zeros included), so rare outliers are clipped;
 * - `entropy`: the threshold whose 255-level quantized distribution is closest (Kullback-Leibler) to the
 *   histogram, as TensorRT's entropy calibrator does;
 * - `mse`: the threshold that minimises the expected squared error (clipping plus rounding) over the histogram.
 * The default was chosen by measured fidelity (see DEFAULT_CALIBRATION_METHOD).
 */
import { invalidParameterError } from '../errors.js';
import type { InferenceEngine } from '../runtime/onnxruntime.js';
import { INPUT_SIZE } from '../weights/topology.js';
import { MODEL_INPUT } from './contract.js';
import { calibratedTensors } from './quantize.js';

export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy' | 'mse';
export const CALIBRATION_METHODS: readonly CalibrationMethod[] = ['minmax', 'percentile', 'entropy', 'mse'];
/**
 * Chosen by fidelity to fp32 on ../shared/data/faces (calibrated on 16 photos or the built-in set, evaluated on the
 * other 48): minimum cosine full-size 0.99955-0.99956 (entropy 0.99933-0.99960, mse 0.99914-0.99949, percentile
 * 0.99716-0.99864); tiny golden network 0.9905-0.9915 (mse 0.9861-0.9946, percentile 0.9706-0.9864, entropy
 * 0.949-0.965).
 */
export const DEFAULT_CALIBRATION_METHOD: CalibrationMethod = 'minmax';
export const PERCENTILE = 99.99;

const BINS = 4096;

/**
 * A histogram of non-negative values over [0, bins x width) that grows by doubling its bin width (merging bin
 * pairs exactly), so values can be added batch by batch without knowing the range first. Zeros are counted apart
 * (after ReLU they are a large share and exactly representable).
 */
export class ActivationHistogram {
  readonly counts = new Float64Array(BINS);
  width = 0;
  zeros = 0;
  max = 0;

  get total(): number {
    let n = this.zeros;
    for (const c of this.counts) n += c;
    return n;
  }

  add(values: Float32Array): void {
    let batchMax = 0;
    for (let i = 0; i < values.length; i++) if (values[i] > batchMax) batchMax = values[i];
    if (batchMax > this.max) this.max = batchMax;
    if (batchMax > 0) {
      if (this.width === 0) this.width = (batchMax / BINS) * 1.0001; // the max falls inside the last bin
      while (batchMax >= this.width * BINS) this.grow();
    }
    const inv = this.width > 0 ? 1 / this.width : 0;
    const counts = this.counts;
    let zeros = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v > 0) counts[Math.min(BINS - 1, (v * inv) | 0)]++;
      else zeros++; // ReLU outputs: never negative
    }
    this.zeros += zeros;
  }

  private grow(): void {
    const c = this.counts;
    for (let i = 0; i < BINS / 2; i++) c[i] = c[2 * i] + c[2 * i + 1];
    c.fill(0, BINS / 2);
    this.width *= 2;
  }

  /** Bins up to the last non-empty one. */
  used(): number {
    let last = BINS - 1;
    while (last > 0 && this.counts[last] === 0) last--;
    return last + 1;
  }
}

/** The upper end of the activation's uint8 range for a method. */
export function rangeFor(h: ActivationHistogram, method: CalibrationMethod): number {
  if (h.max === 0) return 0;
  switch (method) {
    case 'minmax':
      return h.max;
    case 'percentile':
      return percentileRange(h, PERCENTILE);
    case 'entropy':
      return entropyRange(h);
    case 'mse':
      return mseRange(h);
  }
}

function percentileRange(h: ActivationHistogram, p: number): number {
  const target = (h.total * p) / 100;
  let n = h.zeros;
  if (n >= target) return h.width; // almost all zeros: the smallest non-trivial range
  for (let i = 0; i < BINS; i++) {
    n += h.counts[i];
    if (n >= target) return Math.min(h.max, (i + 1) * h.width);
  }
  return h.max;
}

const LEVELS = 255;

/** TensorRT-style KL-divergence search over thresholds at bin edges (the zero bin holds the exact zeros). */
function entropyRange(h: ActivationHistogram): number {
  const used = h.used();
  // Reference distribution: zeros first, then the bins.
  const hist = new Float64Array(used + 1);
  hist[0] = h.zeros;
  hist.set(h.counts.subarray(0, used), 1);
  if (used <= LEVELS) return h.max;
  let best = Infinity;
  let bestI = used;
  const step = Math.max(1, Math.floor((used - LEVELS) / 1024));
  for (let i = LEVELS; i <= used; i += step) {
    const n = i + 1; // the zero bin plus i value bins
    const p = hist.slice(0, n);
    let outliers = 0;
    for (let k = n; k < hist.length; k++) outliers += hist[k];
    p[n - 1] += outliers;
    // Candidate: the i value bins (without the clipped outliers, so clipping costs) merged into LEVELS
    // quantization levels, the zero bin its own level, each level's mass spread evenly over its non-empty bins.
    const q = new Float64Array(n);
    q[0] = hist[0];
    const per = i / LEVELS;
    for (let l = 0; l < LEVELS; l++) {
      const a = 1 + Math.floor(l * per);
      const b = l === LEVELS - 1 ? n : 1 + Math.floor((l + 1) * per);
      let mass = 0;
      let nonEmpty = 0;
      for (let k = a; k < b; k++) {
        mass += hist[k];
        if (hist[k] > 0) nonEmpty++;
      }
      if (nonEmpty > 0) for (let k = a; k < b; k++) if (hist[k] > 0) q[k] = mass / nonEmpty;
    }
    const kl = klDivergence(p, q);
    if (kl < best) {
      best = kl;
      bestI = i;
    }
  }
  return Math.min(h.max, bestI * h.width);
}

function klDivergence(p: Float64Array, q: Float64Array): number {
  let sp = 0;
  let sq = 0;
  for (let k = 0; k < p.length; k++) {
    sp += p[k];
    sq += q[k];
  }
  let d = 0;
  for (let k = 0; k < p.length; k++) {
    if (p[k] === 0) continue;
    const pk = p[k] / sp;
    const qk = q[k] / sq;
    d += qk > 0 ? pk * Math.log(pk / qk) : pk * 30; // a level that lost its mass: heavily penalised
  }
  return d;
}

/** Threshold minimising E[(x - Q(x))^2]: clipped values cost (x - T)^2, the rest the rounding error step^2/12. */
function mseRange(h: ActivationHistogram): number {
  const used = h.used();
  let best = Infinity;
  let bestT = h.max;
  const step = Math.max(1, Math.floor(used / 1024));
  for (let i = Math.max(1, Math.floor(used / 64)); i <= used; i += step) {
    const t = i * h.width;
    const q = t / LEVELS;
    let err = 0;
    let inside = 0;
    for (let k = 0; k < used; k++) {
      const c = h.counts[k];
      if (c === 0) continue;
      const centre = (k + 0.5) * h.width;
      if (centre > t) err += c * (centre - t) ** 2;
      else inside += c;
    }
    err += (inside * q * q) / 12;
    if (err < best) {
      best = err;
      bestT = t;
    }
  }
  return Math.min(h.max, bestT);
}

export interface ActivationStatistics {
  readonly histograms: Readonly<Record<string, ActivationHistogram>>;
  readonly images: number;
}

/**
 * Runs the calibration model (fp32 with the conv activations as outputs) on 224x224 RGB images and gathers the
 * histograms. `images` is consumed in batches, so a long list is never decoded all at once.
 */
export async function collectStatistics(
  engine: InferenceEngine,
  images: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: { batchSize?: number; onImage?: (done: number) => void } = {},
): Promise<ActivationStatistics> {
  const tensors = calibratedTensors();
  const histograms = Object.fromEntries(tensors.map((t) => [t, new ActivationHistogram()]));
  const per = INPUT_SIZE * INPUT_SIZE * 3;
  const batchSize = options.batchSize ?? 2; // every conv activation of an image is ~54 MB of float32
  let batch: Uint8Array[] = [];
  let count = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const pixels = new Uint8Array(batch.length * per);
    batch.forEach((img, i) => pixels.set(img, i * per));
    const out = await engine.run(
      { [MODEL_INPUT]: { data: pixels, dims: [batch.length, INPUT_SIZE, INPUT_SIZE, 3] } },
      tensors,
    );
    for (const t of tensors) histograms[t].add(out[t].data);
    count += batch.length;
    batch = [];
    options.onImage?.(count);
  };
  for await (const img of images) {
    if (img.length !== per) throw invalidParameterError('calibration image', `${per} bytes (224x224 RGB)`, img);
    batch.push(img);
    if (batch.length === batchSize) await flush();
  }
  await flush();
  return { histograms, images: count };
}

/** Every calibrated activation's range for a method. */
export function rangesFor(stats: ActivationStatistics, method: CalibrationMethod): Record<string, number> {
  return Object.fromEntries(Object.entries(stats.histograms).map(([t, h]) => [t, rangeFor(h, method)]));
}
