/**
 * Image decoding with sharp: any JPEG, PNG, WebP, TIFF, GIF (first frame) or AVIF/HEIF becomes 8-bit sRGB
 * (EXIF orientation applied; grey, CMYK, 16-bit and alpha converted). Images over a pixel limit are refused
 * before their pixels are decoded (decompression bombs).
 */
import { stat } from 'node:fs/promises';
import sharp, { type Metadata, type Sharp } from 'sharp';
import { fileError, invalidParameterError, VggFaceError } from '../errors.js';
import { isPlainObject } from '../validate.js';
import { deepfaceResize } from './deepface-resize.js';

/** A decoded image: 8-bit RGB, row-major HWC. */
export interface RawImage {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: 3;
}

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
export type Fit = 'crop' | 'pad' | 'stretch' | 'deepface';
export const FITS: readonly Fit[] = ['crop', 'pad', 'stretch', 'deepface'];

/** 100 megapixels: above any camera photo, below what would exhaust memory. */
export const DEFAULT_MAX_PIXELS = 100_000_000;

export const SUPPORTED_FORMATS = ['jpeg', 'png', 'webp', 'tiff', 'gif', 'heif'] as const;

export interface DecodeOptions {
  readonly maxPixels?: number;
}

export interface ResizeOptions extends DecodeOptions {
  readonly fit?: Fit;
}

const SHARP_FIT = { crop: 'cover', pad: 'contain', stretch: 'fill' } as const satisfies Record<Exclude<Fit, 'deepface'>, string>;

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

async function openImage(input: ImageInput, label: string, maxPixels: number): Promise<Opened> {
  if (typeof input === 'string') {
    try {
      const st = await stat(input);
      if (st.isDirectory()) throw Object.assign(new Error('directory'), { code: 'EISDIR' });
      if (st.size === 0) throw new VggFaceError('E_IMAGE', `${label}: empty file (0 bytes), not an image`, { input: label });
    } catch (err) {
      if (err instanceof VggFaceError) throw err;
      throw fileError(label, err);
    }
  } else if (isRawImage(input)) {
    checkRaw(input, label);
    if (input.width * input.height > maxPixels) throw tooLarge(label, input.width, input.height, maxPixels);
    return { img: sharp(input.data, { raw: { width: input.width, height: input.height, channels: 3 } }), width: input.width, height: input.height };
  } else if (!(input instanceof Uint8Array)) {
    throw invalidParameterError(label, 'a path, a Buffer/Uint8Array of an encoded image, or {data, width, height} RGB pixels', input);
  } else if (input.length === 0) {
    throw new VggFaceError('E_IMAGE', `${label}: empty buffer, not an image`, { input: label });
  }
  let meta: Metadata;
  const img = sharp(input, { autoOrient: true, limitInputPixels: false, failOn: 'error', pages: 1 });
  try {
    meta = await img.metadata();
  } catch (err) {
    throw notAnImage(label, err);
  }
  if (!(SUPPORTED_FORMATS as readonly string[]).includes(meta.format ?? '')) {
    throw new VggFaceError('E_IMAGE', `${label}: ${meta.format ?? 'unknown'} images are not supported; expected JPEG, PNG, WebP, TIFF, GIF or AVIF`, { input: label });
  }
  const w = meta.autoOrient?.width ?? meta.width;
  const h = meta.autoOrient?.height ?? meta.height;
  if (w * h > maxPixels) throw tooLarge(label, w, h, maxPixels);
  return { img, width: w, height: h };
}

function tooLarge(label: string, w: number, h: number, limit: number): VggFaceError {
  return new VggFaceError('E_IMAGE', `${label}: image is ${w}x${h} = ${w * h} pixels, over the limit of ${limit} (raise it with --max-pixels)`, { input: label });
}

function notAnImage(label: string, err: unknown): VggFaceError {
  const msg = (err as Error).message ?? String(err);
  return new VggFaceError('E_IMAGE', `${label}: not a decodable image (${msg.replace(/^Input (buffer|file) /, '')})`, { input: label, cause: err });
}

async function toRgb(img: Sharp, label: string): Promise<RawImage> {
  try {
    const { data, info } = await img.removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new VggFaceError('E_IMAGE', `${label}: decoded to ${info.channels} channels, expected 3`, { input: label });
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height, channels: 3 };
  } catch (err) {
    if (err instanceof VggFaceError) throw err;
    throw notAnImage(label, err);
  }
}

/** Decodes to full-size 8-bit RGB. */
export async function decodeImage(input: ImageInput, label: string, options: DecodeOptions = {}): Promise<RawImage> {
  if (isRawImage(input)) {
    checkRaw(input, label);
    return input;
  }
  return toRgb((await openImage(input, label, options.maxPixels ?? DEFAULT_MAX_PIXELS)).img, label);
}

/**
 * Decodes and brings the image to size x size RGB. An image already that size is used untouched (no resampling).
 */
export async function loadSquare(input: ImageInput, label: string, size: number, options: ResizeOptions = {}): Promise<RawImage> {
  if (isRawImage(input)) {
    checkRaw(input, label);
    if (input.width === size && input.height === size) return input;
  }
  const { img, width, height } = await openImage(input, label, options.maxPixels ?? DEFAULT_MAX_PIXELS);
  const fit = options.fit ?? 'crop';
  if (fit === 'deepface') return deepfaceResize(isRawImage(input) ? input : await toRgb(img, label), size);
  if (width !== size || height !== size) {
    img.resize(size, size, { fit: SHARP_FIT[fit], position: 'centre', background: { r: 0, g: 0, b: 0 } });
  }
  return toRgb(img, label);
}
