/**
 * The pixel work of the pipeline, done where ONNX Runtime runs (the Web Worker, or the page with `worker: false`)
 * so a large photo never holds the page: decoding, bringing a crop to 224x224, and for whole photos detection
 * (face/detection.ts, shared with Node) and the aligned crops (warp.ts).
 */
import { alignmentTransform, type ResolvedAlignOptions } from '../face/align-transform.js';
import { findFaces, type ResolvedDetectOptions } from '../face/detection.js';
import type { DetectedFace } from '../face/types.js';
import { YUNET_INPUT, YUNET_OUTPUTS, type YuNetOutputs } from '../face/yunet.js';
import type { Fit } from '../image/decode.js';
import type { RawImage } from '../image/types.js';
import { checkDrawableSize, decodeImage, decodedElement, has, loadSquare, type BrowserImageInput } from './image.js';
import { resizeRgb } from './resize.js';
import type { TensorData } from './session.js';
import { warpBilinear } from './warp.js';

/** What can cross into a worker: everything a page has but elements, which become ImageBitmaps first. */
export type PortableInput = Exclude<BrowserImageInput, HTMLImageElement | HTMLCanvasElement | OffscreenCanvas | URL>;

export interface FoundFace {
  readonly face: DetectedFace;
  /** The aligned crop, when alignment options were given. */
  readonly crop?: RawImage;
}

type Run = (
  feeds: Record<string, TensorData>,
  outputs: readonly string[],
) => Promise<Record<string, { data: Float32Array; dims: number[] }>>;

export function squareOp(
  input: BrowserImageInput,
  label: string,
  size: number,
  fit: Fit,
  maxPixels: number | undefined,
): Promise<RawImage> {
  return loadSquare(input, label, size, fit, maxPixels);
}

/**
 * Decodes a photo, finds its faces with the YuNet session `run`, and cuts each aligned crop from the original pixels.
 */
export async function facesOp(
  run: Run,
  input: BrowserImageInput,
  label: string,
  detect: ResolvedDetectOptions,
  align: ResolvedAlignOptions | null,
): Promise<FoundFace[]> {
  const image = await decodeImage(input, label, detect.maxPixels);
  const faces = await findFaces(image, detect, {
    resize: async (img, w, h) => resizeRgb(img, w, h).data,
    run: async (tensor, width, height) =>
      (await run(
        { [YUNET_INPUT]: { type: 'float32', data: tensor, dims: [1, 3, height, width] } },
        YUNET_OUTPUTS,
      )) as YuNetOutputs,
  });
  return faces.map((face) =>
    align ? { face, crop: warpBilinear(image, alignmentTransform(face, align), align.size) } : { face },
  );
}

/**
 * Makes any page input portable: an <img> or canvas becomes an ImageBitmap (this library's, to transfer), a URL
 * absolute.
 */
export async function portable(
  input: BrowserImageInput,
  label: string,
): Promise<{ input: PortableInput; transfer: Transferable[] }> {
  if (typeof input === 'string' || input instanceof URL) {
    return {
      input: new URL(String(input), typeof location === 'undefined' ? undefined : location.href).href,
      transfer: [],
    };
  }
  let source: HTMLImageElement | HTMLCanvasElement | OffscreenCanvas | undefined;
  if (has('HTMLImageElement') && input instanceof HTMLImageElement) {
    await decodedElement(input, label);
    source = input;
  } else if (
    (has('HTMLCanvasElement') && input instanceof HTMLCanvasElement) ||
    (has('OffscreenCanvas') && input instanceof OffscreenCanvas)
  ) {
    checkDrawableSize(input.width, input.height, label);
    source = input;
  }
  if (!source) return { input: input as PortableInput, transfer: [] };
  const bitmap = await createImageBitmap(source, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  return { input: bitmap, transfer: [bitmap] };
}
