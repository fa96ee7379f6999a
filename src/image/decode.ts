/**
 * Image decoding with sharp: any JPEG, PNG, WebP, TIFF, GIF (first frame) or AVIF/HEIF becomes 8-bit sRGB
 * (EXIF orientation applied; grey, CMYK, 16-bit and alpha converted). What decoding may cost is bounded before a
 * pixel is decoded, from the header: the pixel count (decompression bombs), the longer side and the aspect ratio
 * (thin images cost far more than their pixels: see {@link DEFAULT_MAX_SIDE}); and decoding itself has a time limit.
 */
import { stat } from 'node:fs/promises';
import sharp, { type Metadata, type Sharp } from 'sharp';
import { fileError, invalidParameterError, VggFaceError } from '../errors.js';
import { DESCRIBE_OPTIONS, type Fit } from '../options.js';
import { isPlainObject } from '../validate.js';
import { deepfaceResize } from './deepface-resize.js';
import type { RawImage } from './types.js';

/** A path, the bytes of an encoded image, or raw RGB pixels. */
export type ImageInput = string | Uint8Array | RawImage;

/**
 * How a non-square image is brought to the model's square input:
 * - `crop` (default): scale so the shorter side fits, then cut the centre (no distortion, no borders);
 * - `pad`: scale so the longer side fits and pad with black (deepface's behaviour);
 * - `stretch`: scale each side independently (distorts faces);
 * - `deepface`: deepface's own resize (bilinear as OpenCV, truncated size, zero padding; see deepface-resize.ts),
 *   the default for models converted with deepface preprocessing.
 */
export type { Fit } from '../options.js';
export const FITS: readonly Fit[] = DESCRIBE_OPTIONS.fit.values;

/** 100 megapixels: above any camera photo, below what would exhaust memory (defined with the option, options.ts). */
export const DEFAULT_MAX_PIXELS = DESCRIBE_OPTIONS.maxPixels.default;

/**
 * The pixel limit alone does not bound the work: a 114 kB PNG of 39,000,000 x 1 pixels (under 40 MP) took 4.5 s to
 * decode here (26 s through the server's face detection), while a 2 MB PNG of 32768 x 1024 took 0.15 s, as a square
 * one of the same pixels does (sharp 0.35, this 2-core machine). So the longer side and the aspect ratio are
 * bounded too. 32768 is twice what any camera writes on a side (48 MP sensors: 8064; WebP stops at 16383) and leaves
 * room for stitched panoramas; 32:1 is over three times the widest phone panorama (a 360-degree sweep is about 8:1),
 * and with both limits the thinnest image allowed is 32768 x 1024, as cheap per pixel as a square one.
 */
export const DEFAULT_MAX_SIDE = 32_768;
export const DEFAULT_MAX_ASPECT_RATIO = 32;
/**
 * The time limit of one decode (sharp's `timeout`, whole seconds): a safety net past the header limits. A 40 MP
 * progressive JPEG of noise, the costliest kind, decodes in about 2 s here.
 */
export const DEFAULT_DECODE_TIMEOUT_SECONDS = 30;

export const SUPPORTED_FORMATS = ['jpeg', 'png', 'webp', 'tiff', 'gif', 'heif'] as const;

export interface DecodeOptions {
  /** Default {@link DEFAULT_MAX_PIXELS}. */
  readonly maxPixels?: number;
  /** Longest side, in pixels; default {@link DEFAULT_MAX_SIDE}. */
  readonly maxSide?: number;
  /** Longer side over shorter side; default {@link DEFAULT_MAX_ASPECT_RATIO}. */
  readonly maxAspectRatio?: number;
  /** Whole seconds; default {@link DEFAULT_DECODE_TIMEOUT_SECONDS}. */
  readonly timeoutSeconds?: number;
}

/** The header limits of {@link DecodeOptions}, resolved. */
export interface SizeLimits {
  readonly maxPixels: number;
  readonly maxSide: number;
  readonly maxAspectRatio: number;
}

export function sizeLimits(options: DecodeOptions = {}): SizeLimits {
  return {
    maxPixels: options.maxPixels ?? DEFAULT_MAX_PIXELS,
    maxSide: options.maxSide ?? DEFAULT_MAX_SIDE,
    maxAspectRatio: options.maxAspectRatio ?? DEFAULT_MAX_ASPECT_RATIO,
  };
}

/** Which header limit an image is over, and the phrase that says so after its label. */
export interface SizeProblem {
  readonly limit: 'pixels' | 'side' | 'aspect';
  /** `image is 39000000x1: its longer side is over the limit of 32768 pixels` */
  readonly message: string;
}

/**
 * What makes an image of `width` x `height` too costly to decode under `limits`, or undefined when it is within
 * them. `whose` names the limit's owner in the message: `the` (the library) or `the server's`.
 */
export function sizeProblem(width: number, height: number, limits: SizeLimits, whose = 'the'): SizeProblem | undefined {
  const pixels = width * height;
  const long = Math.max(width, height);
  const short = Math.min(width, height);
  if (pixels > limits.maxPixels)
    return {
      limit: 'pixels',
      message: `image is ${width}x${height} = ${pixels} pixels, over ${whose} limit of ${limits.maxPixels}`,
    };
  if (long > limits.maxSide)
    return {
      limit: 'side',
      message: `image is ${width}x${height}: its longer side is over ${whose} limit of ${limits.maxSide} pixels`,
    };
  if (long > short * limits.maxAspectRatio) {
    return {
      limit: 'aspect',
      message:
        `image is ${width}x${height}: its aspect ratio ` +
        `(${Math.round(long / short)}:1) is over ${whose} limit of ${limits.maxAspectRatio}:1`,
    };
  }
  return undefined;
}

export interface ResizeOptions extends DecodeOptions {
  readonly fit?: Fit;
}

const SHARP_FIT = { crop: 'cover', pad: 'contain', stretch: 'fill' } as const satisfies Record<
  Exclude<Fit, 'deepface'>,
  string
>;

export function isRawImage(value: unknown): value is RawImage {
  if (!isPlainObject(value)) return false;
  const v = value as Partial<RawImage>;
  return v.data instanceof Uint8Array && typeof v.width === 'number' && typeof v.height === 'number';
}

/** Names an input in messages: the path as given, or its position. */
export function inputLabel(input: ImageInput, index: number): string {
  return typeof input === 'string' ? input : `input #${index + 1}`;
}

function checkRaw(raw: RawImage, label: string): void {
  const { width, height, data } = raw;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw invalidParameterError(`${label} width/height`, 'positive integers', `${width}x${height}`);
  }
  if (data.length !== width * height * 3) {
    throw invalidParameterError(`${label} data`, `${width * height * 3} bytes (${width}x${height}x3 RGB)`, data);
  }
}

interface Opened {
  readonly img: Sharp;
  /** Size after EXIF orientation. */
  readonly width: number;
  readonly height: number;
}

async function openImage(input: ImageInput, label: string, options: DecodeOptions): Promise<Opened> {
  const limits = sizeLimits(options);
  if (typeof input === 'string') {
    try {
      const st = await stat(input);
      if (st.isDirectory()) throw Object.assign(new Error('directory'), { code: 'EISDIR' });
      if (st.size === 0)
        throw new VggFaceError('E_IMAGE', `${label}: empty file (0 bytes), not an image`, { input: label });
    } catch (err) {
      if (err instanceof VggFaceError) throw err;
      throw fileError(label, err);
    }
  } else if (isRawImage(input)) {
    checkRaw(input, label);
    checkSize(label, input.width, input.height, limits);
    return {
      img: sharp(input.data, { raw: { width: input.width, height: input.height, channels: 3 } }),
      width: input.width,
      height: input.height,
    };
  } else if (!(input instanceof Uint8Array)) {
    throw invalidParameterError(
      label,
      'a path, a Buffer/Uint8Array of an encoded image, or {data, width, height} RGB pixels',
      input,
    );
  } else if (input.length === 0) {
    throw new VggFaceError('E_IMAGE', `${label}: empty buffer, not an image`, { input: label });
  }
  let meta: Metadata;
  const img = sharp(input, { autoOrient: true, limitInputPixels: false, failOn: 'error', pages: 1 }).timeout({
    seconds: timeoutOf(options),
  });
  try {
    meta = await img.metadata();
  } catch (err) {
    throw notAnImage(label, err);
  }
  if (!(SUPPORTED_FORMATS as readonly string[]).includes(meta.format ?? '')) {
    throw new VggFaceError(
      'E_IMAGE',
      `${label}: ${meta.format ?? 'unknown'} images are not supported; expected JPEG, PNG, WebP, TIFF, GIF or AVIF`,
      { input: label },
    );
  }
  const w = meta.autoOrient?.width ?? meta.width;
  const h = meta.autoOrient?.height ?? meta.height;
  checkSize(label, w, h, limits);
  return { img, width: w, height: h };
}

function timeoutOf(options: DecodeOptions): number {
  const seconds = options.timeoutSeconds ?? DEFAULT_DECODE_TIMEOUT_SECONDS;
  if (!Number.isInteger(seconds) || seconds < 1)
    throw invalidParameterError('timeoutSeconds', 'a whole number of seconds, at least 1', seconds);
  return seconds;
}

function checkSize(label: string, w: number, h: number, limits: SizeLimits): void {
  const problem = sizeProblem(w, h, limits);
  if (problem === undefined) return;
  const hint = problem.limit === 'pixels' ? ' (raise it with --max-pixels)' : '';
  throw new VggFaceError('E_IMAGE', `${label}: ${problem.message}${hint}`, { input: label });
}

function notAnImage(label: string, err: unknown): VggFaceError {
  const msg = (err as Error).message ?? String(err);
  return new VggFaceError('E_IMAGE', `${label}: not a decodable image (${msg.replace(/^Input (buffer|file) /, '')})`, {
    input: label,
    cause: err,
  });
}

/** sharp's message when its `timeout` stops a pipeline: `timeout: 12% complete`. */
const SHARP_TIMEOUT = /^timeout: \d+% complete/;

async function toRgb(img: Sharp, label: string, options: DecodeOptions): Promise<RawImage> {
  try {
    const { data, info } = await img
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3)
      throw new VggFaceError('E_IMAGE', `${label}: decoded to ${info.channels} channels, expected 3`, { input: label });
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      width: info.width,
      height: info.height,
      channels: 3,
    };
  } catch (err) {
    if (err instanceof VggFaceError) throw err;
    if (SHARP_TIMEOUT.test((err as Error)?.message ?? '')) {
      throw new VggFaceError('E_IMAGE', `${label}: decoding took over the time limit of ${timeoutOf(options)} s`, {
        input: label,
        cause: err,
      });
    }
    throw notAnImage(label, err);
  }
}

/** Decodes to full-size 8-bit RGB. */
export async function decodeImage(input: ImageInput, label: string, options: DecodeOptions = {}): Promise<RawImage> {
  if (isRawImage(input)) {
    checkRaw(input, label);
    return input;
  }
  return toRgb((await openImage(input, label, options)).img, label, options);
}

/**
 * Decodes and brings the image to size x size RGB. An image already that size is used untouched (no resampling).
 */
export async function loadSquare(
  input: ImageInput,
  label: string,
  size: number,
  options: ResizeOptions = {},
): Promise<RawImage> {
  if (isRawImage(input)) {
    checkRaw(input, label);
    if (input.width === size && input.height === size) return input;
  }
  const { img, width, height } = await openImage(input, label, options);
  const fit = options.fit ?? 'crop';
  if (fit === 'deepface') return deepfaceResize(isRawImage(input) ? input : await toRgb(img, label, options), size);
  if (width !== size || height !== size) {
    img.resize(size, size, { fit: SHARP_FIT[fit], position: 'centre', background: { r: 0, g: 0, b: 0 } });
  }
  return toRgb(img, label, options);
}
