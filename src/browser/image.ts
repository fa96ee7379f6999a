/**
 * Images in the browser: what the page has (a File or Blob, a URL, an <img>, a canvas, an ImageBitmap, ImageData,
 * raw RGB) decoded to the library's RawImage (8-bit RGB, row-major), with the decoder's own size limits and
 * errors phrased as Node's (image/decode.ts). Decoding is the browser's (createImageBitmap: EXIF orientation applied,
 * no colour conversion, alpha dropped as sharp's removeAlpha does); resampling is resize.ts's, so it matches sharp's.
 */
import { VggFaceError, invalidParameterError } from '../errors.js';
import type { Fit } from '../image/decode.js';
import type { RawImage } from '../image/types.js';
import { deepfaceResize } from '../image/deepface-resize.js';
import { DESCRIBE_OPTIONS } from '../options.js';
import { isPlainObject } from '../validate.js';
import { fitSquare } from './resize.js';

/** A photo or face crop, as a page has it. Strings are URLs (fetched, same rules as fetch()). */
export type BrowserImageInput =
  | Blob
  | string
  | URL
  | ImageBitmap
  | HTMLImageElement
  | HTMLCanvasElement
  | OffscreenCanvas
  | ImageData
  | RawImage;

/** 100 megapixels, as in Node: the option's default (options.ts). */
export const DEFAULT_MAX_PIXELS = DESCRIBE_OPTIONS.maxPixels.default;

/** Whether this context has a global constructor (a Web Worker has no HTMLImageElement, older browsers no File). */
export const has = (name: string): boolean => typeof (globalThis as Record<string, unknown>)[name] === 'function';

/** Names an input in messages: a File's name, a URL, else its position (as Node names paths and buffers). */
export function inputLabel(input: BrowserImageInput, index: number): string {
  if (typeof input === 'string') return input;
  if (input instanceof URL) return input.href;
  if (has('File') && input instanceof File && input.name) return input.name;
  return `input #${index + 1}`;
}

function isRaw(v: unknown): v is RawImage {
  if (!isPlainObject(v)) return false;
  const r = v as Partial<RawImage>;
  return r.data instanceof Uint8Array && typeof r.width === 'number' && typeof r.height === 'number';
}

function checkRaw(raw: RawImage, label: string): void {
  const { width, height, data } = raw;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw invalidParameterError(`${label} width/height`, 'positive integers', `${width}x${height}`);
  }
  if (data.length !== width * height * 3)
    throw invalidParameterError(`${label} data`, `${width * height * 3} bytes (${width}x${height}x3 RGB)`, data);
}

function tooLarge(label: string, w: number, h: number, limit: number): VggFaceError {
  return new VggFaceError(
    'E_IMAGE',
    `${label}: image is ${w}x${h} = ${w * h} pixels, over the limit of ${limit} (raise it with maxPixels)`,
    { input: label },
  );
}

export function notAnImage(label: string, err: unknown): VggFaceError {
  return new VggFaceError('E_IMAGE', `${label}: not a decodable image (${(err as Error)?.message ?? String(err)})`, {
    input: label,
    cause: err,
  });
}

/** Waits until an <img> has decoded, so its pixels can be drawn; one that cannot, or has none, is not an image. */
export async function decodedElement(img: HTMLImageElement, label: string): Promise<void> {
  try {
    await img.decode();
  } catch (err) {
    throw notAnImage(label, err);
  }
  if (img.naturalWidth === 0) throw notAnImage(label, new Error('the image has no pixels'));
}

/** A canvas or bitmap with no pixels is not an image. */
export function checkDrawableSize(width: number, height: number, label: string): void {
  if (!(width > 0 && height > 0)) throw notAnImage(label, new Error(`it is ${width}x${height}`));
}

/** RGBA (ImageData, canvas) to RGB; alpha is dropped as sharp's removeAlpha does. */
function rgbaToRgb(rgba: Uint8ClampedArray | Uint8Array, width: number, height: number): RawImage {
  const n = width * height;
  const data = new Uint8Array(n * 3);
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    data[i * 3] = rgba[j];
    data[i * 3 + 1] = rgba[j + 1];
    data[i * 3 + 2] = rgba[j + 2];
  }
  return { data, width, height, channels: 3 };
}

function pixelsOf(source: CanvasImageSource, width: number, height: number): RawImage {
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true }) as OffscreenCanvasRenderingContext2D | null;
  if (!ctx) throw new VggFaceError('E_IMAGE', 'this browser gives no 2D canvas to read pixels with');
  ctx.drawImage(source, 0, 0);
  return rgbaToRgb(ctx.getImageData(0, 0, width, height).data, width, height);
}

async function blobOf(url: string, label: string): Promise<Blob> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new VggFaceError('E_NETWORK', `${label}: cannot fetch (${(err as Error).message})`, {
      input: label,
      cause: err,
    });
  }
  if (!res.ok)
    throw new VggFaceError('E_NETWORK', `${label}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`, {
      input: label,
    });
  return res.blob();
}

async function bitmapOf(blob: Blob, label: string): Promise<ImageBitmap> {
  if (blob.size === 0)
    throw new VggFaceError('E_IMAGE', `${label}: empty file (0 bytes), not an image`, { input: label });
  try {
    return await createImageBitmap(blob, {
      imageOrientation: 'from-image',
      colorSpaceConversion: 'none',
      premultiplyAlpha: 'none',
    });
  } catch (err) {
    throw notAnImage(label, err);
  }
}

/** Decodes any input to full-size 8-bit RGB. */
export async function decodeImage(
  input: BrowserImageInput,
  label: string,
  maxPixels = DEFAULT_MAX_PIXELS,
): Promise<RawImage> {
  const limit = (w: number, h: number) => {
    if (w * h > maxPixels) throw tooLarge(label, w, h, maxPixels);
  };
  if (isRaw(input)) {
    checkRaw(input, label);
    limit(input.width, input.height);
    return input;
  }
  if (has('ImageData') && input instanceof ImageData) {
    limit(input.width, input.height);
    return rgbaToRgb(input.data, input.width, input.height);
  }
  if (typeof input === 'string' || input instanceof URL) input = await blobOf(String(input), label);
  if (input instanceof Blob) {
    const bitmap = await bitmapOf(input, label);
    try {
      limit(bitmap.width, bitmap.height);
      return pixelsOf(bitmap, bitmap.width, bitmap.height);
    } finally {
      bitmap.close();
    }
  }
  if (has('HTMLImageElement') && input instanceof HTMLImageElement) {
    await decodedElement(input, label);
    limit(input.naturalWidth, input.naturalHeight);
    return pixelsOf(input, input.naturalWidth, input.naturalHeight);
  }
  const drawable =
    (has('ImageBitmap') && input instanceof ImageBitmap) ||
    (has('OffscreenCanvas') && input instanceof OffscreenCanvas) ||
    (has('HTMLCanvasElement') && input instanceof HTMLCanvasElement);
  if (drawable) {
    const { width, height } = input as ImageBitmap;
    checkDrawableSize(width, height, label);
    limit(width, height);
    return pixelsOf(input as CanvasImageSource, width, height);
  }
  throw invalidParameterError(
    label,
    'a Blob or File, a URL, an ImageBitmap, an <img>, a canvas, ImageData or {data, width, height} RGB pixels',
    input,
  );
}

/** Decodes and brings the image to size x size, as Node's loadSquare: an image already that size is untouched. */
export async function loadSquare(
  input: BrowserImageInput,
  label: string,
  size: number,
  fit: Fit,
  maxPixels?: number,
): Promise<RawImage> {
  const img = await decodeImage(input, label, maxPixels);
  if (img.width === size && img.height === size) return img;
  return fit === 'deepface' ? deepfaceResize(img, size) : fitSquare(img, size, fit);
}
