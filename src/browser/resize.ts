/**
 * Resampling RGB pixels in JavaScript exactly as libvips does for sharp's `resize` (kernel lanczos3, the default),
 * so a crop brought to 224x224 in the browser is the one Node's `fit: 'crop'` (and `pad`, `stretch`) gives, to the
 * bit: reductions are libvips's reducev then reduceh (an integer box shrink first when the factor is 4 or more,
 * 12-bit fixed-point lanczos3 masks at 1/64 pixel, output centred, edges extended, 8-bit between passes);
 * enlargements its bicubic affine. Pure, and tested against sharp in Node (test/browser-shared.test.ts).
 *
 * The one thing not reproduced: sharp decodes a JPEG at 1/2, 1/4 or 1/8 size inside the decoder (DCT scaling) when
 * it will shrink it 3 times or more; the browser's decoder gives full-size pixels only.
 */
import type { RawImage } from '../image/types.js';

const TRANSFORM_SCALE = 64; // libvips VIPS_TRANSFORM_SCALE: masks for 1/64 pixel steps
const INTERPOLATE_SHIFT = 12; // libvips VIPS_INTERPOLATE_SHIFT: 12-bit fixed-point weights

const sinc = (x: number): number => (x === 0 ? 1 : Math.sin(x * Math.PI) / (x * Math.PI));
const lanczos3 = (x: number): number => (x >= -3 && x <= 3 ? sinc(x) * sinc(x / 3) : 0);
/** C's rint (round half to even). */
const rint = (x: number): number => {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/**
 * The output pixels of one axis: for output i, taps[i * n + t] (clamped input indices) weighted by weights[i * n + t].
 */
interface Taps {
  readonly outLen: number;
  readonly n: number;
  readonly taps: Int32Array;
  readonly weights: Int32Array;
  /** Added before the shift, and the shift: (sum + round) >> shift, or (sum * multiplier) / 2^24 for a box. */
  readonly box?: number;
}

/** libvips shrinkh / shrinkv (uchar): the average of each run of `f` pixels, the edge extended, in fixed point. */
function boxTaps(inLen: number, f: number): Taps {
  const outLen = Math.ceil(inLen / f);
  const taps = new Int32Array(outLen * f);
  for (let i = 0; i < outLen; i++) for (let k = 0; k < f; k++) taps[i * f + k] = Math.min(inLen - 1, i * f + k);
  return { outLen, n: f, taps, weights: new Int32Array(outLen * f).fill(1), box: f };
}

/**
 * libvips reduceh / reducev's residual step (uchar, lanczos3): 12-bit masks tabulated at 1/64 pixel, output centred.
 */
function lanczosTaps(inLen: number, outLen: number, residual: number, extra: number): Taps {
  const n = 2 * rint(3 * residual) + 1;
  const masks: Int32Array[] = [];
  for (let t = 0; t <= TRANSFORM_SCALE; t++) {
    const half = t / TRANSFORM_SCALE + n / 2 - 1;
    const c = new Float64Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += c[i] = lanczos3((i - half) / residual);
    masks.push(Int32Array.from(c, (v) => Math.trunc((v / sum) * (1 << INTERPOLATE_SHIFT))));
  }
  const offset = (1 + extra) / 2 - 1;
  const pad = Math.ceil(n / 2) - 1;
  const taps = new Int32Array(outLen * n);
  const weights = new Int32Array(outLen * n);
  for (let i = 0; i < outLen; i++) {
    const X = (i + 0.5) * residual - 0.5 - offset; // in the input extended by `pad` pixels at the start
    const ix = Math.trunc(X);
    weights.set(masks[((Math.trunc(X * TRANSFORM_SCALE * 2) & (TRANSFORM_SCALE * 2 - 1)) + 1) >> 1], i * n);
    for (let t = 0; t < n; t++) taps[i * n + t] = Math.min(inLen - 1, Math.max(0, ix + t - pad));
  }
  return { outLen, n, taps, weights };
}

const finish = (sum: number, box: number | undefined): number => {
  if (box !== undefined) return Math.floor(((sum + (box >> 1)) * Math.floor(2 ** 32 / (256 * box))) / 2 ** 24);
  const v = (sum + (1 << (INTERPOLATE_SHIFT - 1))) >> INTERPOLATE_SHIFT;
  return v < 0 ? 0 : v > 255 ? 255 : v;
};

/** Applies taps down the columns: whole rows at a time, for the cache. */
function applyVertical(img: RawImage, t: Taps): RawImage {
  const row = img.width * 3;
  const out = new Uint8Array(t.outLen * row);
  const acc = new Int32Array(row);
  for (let i = 0; i < t.outLen; i++) {
    acc.fill(0);
    for (let k = 0; k < t.n; k++) {
      const w = t.weights[i * t.n + k];
      if (w === 0) continue;
      const src = t.taps[i * t.n + k] * row;
      for (let j = 0; j < row; j++) acc[j] += w * img.data[src + j];
    }
    for (let j = 0; j < row; j++) out[i * row + j] = finish(acc[j], t.box);
  }
  return { data: out, width: img.width, height: t.outLen, channels: 3 };
}

/** Applies taps along the rows. */
function applyHorizontal(img: RawImage, t: Taps): RawImage {
  const out = new Uint8Array(t.outLen * img.height * 3);
  for (let y = 0; y < img.height; y++) {
    const src = y * img.width * 3;
    const dst = y * t.outLen * 3;
    for (let i = 0; i < t.outLen; i++) {
      let r = 0,
        g = 0,
        b = 0;
      for (let k = i * t.n, end = k + t.n; k < end; k++) {
        const w = t.weights[k];
        const p = src + t.taps[k] * 3;
        r += w * img.data[p];
        g += w * img.data[p + 1];
        b += w * img.data[p + 2];
      }
      out[dst + i * 3] = finish(r, t.box);
      out[dst + i * 3 + 1] = finish(g, t.box);
      out[dst + i * 3 + 2] = finish(b, t.box);
    }
  }
  return { data: out, width: t.outLen, height: img.height, channels: 3 };
}

/**
 * libvips reduceh / reducev (uchar, lanczos3, gap 2): an integer box shrink by floor(factor / 2) when that is 2 or
 * more, then the residual reduction.
 */
function reduceAxis(img: RawImage, shrink: number, vertical: boolean): RawImage {
  const inLen = vertical ? img.height : img.width;
  const outLen = Math.max(1, Math.floor(inLen / shrink + 0.5));
  const apply = vertical ? applyVertical : applyHorizontal;
  let extra = outLen * shrink - inLen;
  let residual = shrink;
  const intShrink = Math.max(1, Math.floor(inLen / outLen / 2));
  let src = img;
  if (intShrink > 1) {
    src = apply(img, boxTaps(inLen, intShrink));
    residual /= intShrink;
    extra /= intShrink;
  }
  if (residual === 1) return src;
  return apply(src, lanczosTaps(vertical ? src.height : src.width, outLen, residual, extra));
}

/** Catmull-Rom weights of taps -1, 0, 1, 2 at fraction x, as libvips computes them. */
function catmull(x: number): [number, number, number, number] {
  const cr1 = 1 - x;
  const cr2 = -0.5 * x;
  const cr3 = cr1 * cr2;
  const cone = cr1 * cr3;
  const cfou = x * cr3;
  const cr4 = cfou - cone;
  return [cone, cr1 - cone + cr4, x - cfou - cr4, cfou];
}
let bicubicMasks: Int32Array[] | undefined;

/**
 * libvips vips_affine with the bicubic interpolator (uchar, 12-bit fixed point, edges extended), as vips_resize
 * enlarges for sharp: output pixel x samples input x / scale - 0.5 (found by probing sharp 0.35 / libvips 8.18
 * with single bright pixels; bit-exact on the crops of test/browser-shared.test.ts).
 */
function enlarge(img: RawImage, hscale: number, vscale: number): RawImage {
  bicubicMasks ??= Array.from({ length: TRANSFORM_SCALE + 1 }, (_, t) =>
    Int32Array.from(catmull(t / TRANSFORM_SCALE), (v) => Math.trunc(v * (1 << INTERPOLATE_SHIFT))),
  );
  const w = Math.floor(img.width * hscale + 0.5);
  const h = Math.floor(img.height * vscale + 0.5);
  const out = new Uint8Array(w * h * 3);
  const round = 1 << (INTERPOLATE_SHIFT - 1);
  const place = (scale: number, size: number, o: number) => {
    const u = o / scale - 0.5 + 1; // + 1: libvips's window offset (keeps u positive)
    const iu = Math.trunc(u);
    const mask = bicubicMasks![((Math.trunc(u * TRANSFORM_SCALE * 2) & (TRANSFORM_SCALE * 2 - 1)) + 1) >> 1];
    const taps = [0, 1, 2, 3].map((k) => Math.min(size - 1, Math.max(0, iu - 2 + k)));
    return { mask, taps };
  };
  const xs = Array.from({ length: w }, (_, x) => place(hscale, img.width, x));
  for (let y = 0; y < h; y++) {
    const { mask: cy, taps: rows } = place(vscale, img.height, y);
    for (let x = 0; x < w; x++) {
      const { mask: cx, taps: cols } = xs[x];
      for (let c = 0; c < 3; c++) {
        let sum = round;
        for (let j = 0; j < 4; j++) {
          const row = rows[j] * img.width;
          let r = round;
          for (let i = 0; i < 4; i++) r += cx[i] * img.data[(row + cols[i]) * 3 + c];
          sum += cy[j] * (r >> INTERPOLATE_SHIFT);
        }
        const v = sum >> INTERPOLATE_SHIFT;
        out[(y * w + x) * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
  return { data: out, width: w, height: h, channels: 3 };
}

/**
 * RGB pixels scaled by 1 / hshrink, 1 / vshrink (input pixels per output pixel) as libvips's vips_resize does for
 * sharp (lanczos3): reductions first, vertical then horizontal, each rounded to 8 bits; then any enlargement
 * (bicubic). The output is round(width / hshrink) x round(height / vshrink).
 */
export function scaleRgb(img: RawImage, hshrink: number, vshrink: number): RawImage {
  let out = img;
  if (vshrink > 1) out = reduceAxis(out, vshrink, true);
  if (hshrink > 1) out = reduceAxis(out, hshrink, false);
  if (hshrink < 1 || vshrink < 1) out = enlarge(out, Math.max(1, 1 / hshrink), Math.max(1, 1 / vshrink));
  return out;
}

/** RGB pixels scaled to w x h as sharp's resize (fit fill, lanczos3) does. */
export function resizeRgb(img: RawImage, w: number, h: number): RawImage {
  if (img.width === w && img.height === h) return img;
  return scaleRgb(img, img.width / w, img.height / h);
}

export type SquareFit = 'crop' | 'pad' | 'stretch';

/** sharp's `cover` (crop) / `contain` (pad) / `fill` (stretch) to size x size, centred, black padding. */
export function fitSquare(img: RawImage, size: number, fit: SquareFit): RawImage {
  if (img.width === size && img.height === size) return img;
  if (fit === 'stretch') return scaleRgb(img, img.width / size, img.height / size);
  const shrink = fit === 'crop' ? Math.min(img.width, img.height) / size : Math.max(img.width, img.height) / size;
  const scaled = scaleRgb(img, shrink, shrink);
  const { width: w, height: h } = scaled;
  const out = new Uint8Array(size * size * 3);
  if (fit === 'crop') {
    const left = Math.floor((w - size + 1) / 2);
    const top = Math.floor((h - size + 1) / 2);
    for (let y = 0; y < size; y++)
      out.set(scaled.data.subarray(((y + top) * w + left) * 3, ((y + top) * w + left + size) * 3), y * size * 3);
  } else {
    const left = Math.floor((size - w) / 2);
    const top = Math.floor((size - h) / 2);
    for (let y = 0; y < h; y++)
      out.set(scaled.data.subarray(y * w * 3, (y + 1) * w * 3), ((y + top) * size + left) * 3);
  }
  return { data: out, width: size, height: size, channels: 3 };
}
