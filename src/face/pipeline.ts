/** Whole photos to aligned face crops: decode once, detect, then cut each face from the original pixels. */
import { VggFaceError } from '../errors.js';
import { decodeImage, type ImageInput } from '../image/decode.js';
import { alignFace, type ResolvedAlignOptions } from './align.js';
import type { FaceDetector, ResolvedDetectOptions } from './detector.js';
import type { Similarity } from './similarity.js';
import type { DetectedFace } from './types.js';

export interface AlignedFace {
  readonly face: DetectedFace;
  /** size x size RGB, upright. */
  readonly crop: { readonly data: Uint8Array; readonly width: number; readonly height: number; readonly channels: 3 };
  /** Photo pixels to crop pixels. */
  readonly transform: Similarity;
}

export interface PhotoFaces {
  readonly label: string;
  /** Size of the photo after EXIF orientation. */
  readonly width: number;
  readonly height: number;
  /** Largest first; empty when no face was found. */
  readonly faces: readonly AlignedFace[];
}

export async function extractFaces(
  detector: FaceDetector,
  input: ImageInput,
  label: string,
  detect: ResolvedDetectOptions,
  align: ResolvedAlignOptions,
): Promise<PhotoFaces> {
  const image = await decodeImage(input, label, { maxPixels: detect.maxPixels });
  const faces = await detector.detectDecoded(image, detect);
  const aligned: AlignedFace[] = [];
  for (const face of faces) aligned.push({ face, ...(await alignFace(image, face, align)) });
  return { label, width: image.width, height: image.height, faces: aligned };
}

export type SettledPhoto = { photo: PhotoFaces; error?: undefined } | { photo?: undefined; error: VggFaceError };

/**
 * Like {@link extractFaces} for many photos, `concurrency` at a time (a decoded 12 MP photo is 36 MB, so not all
 * at once), and never rejects: a photo that fails carries its error. Results are in input order.
 */
export async function extractFacesSettled(
  detector: FaceDetector,
  items: readonly { input: ImageInput; label: string }[],
  detect: ResolvedDetectOptions,
  align: ResolvedAlignOptions,
  concurrency = 2,
): Promise<SettledPhoto[]> {
  const results: SettledPhoto[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) {
      const { input, label } = items[i];
      try {
        results[i] = { photo: await extractFaces(detector, input, label, detect, align) };
      } catch (err) {
        const error =
          err instanceof VggFaceError
            ? err
            : new VggFaceError('E_IMAGE', `${label}: ${(err as Error)?.message ?? String(err)}`, {
                input: label,
                cause: err,
              });
        results[i] = { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}
