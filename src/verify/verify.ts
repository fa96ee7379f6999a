/** Same person or not: distances against a threshold, for one pair or many, each distinct image described once. */
import type { VggFaceError } from '../errors.js';
import type { ImageInput } from '../image/decode.js';
import { distance, type Metric } from '../distance/distance.js';
import type { DescribePhotosOptions, VggFace } from '../vggface.js';
import type { DetectedFace } from '../face/types.js';

export interface Verification {
  readonly verified: boolean;
  readonly distance: number;
  readonly threshold: number;
  readonly metric: Metric;
}

/** Compares two descriptors: verified when distance <= threshold. */
export function verifyDescriptors(a: Float32Array, b: Float32Array, metric: Metric, threshold: number): Verification {
  const d = distance(a, b, metric);
  return { verified: d <= threshold, distance: d, threshold, metric };
}

export type Described =
  | {
      readonly descriptor: Float32Array;
      readonly face?: DetectedFace;
      readonly error?: undefined;
      readonly noFace?: undefined;
    }
  | {
      readonly descriptor?: undefined;
      readonly face?: undefined;
      readonly error: VggFaceError;
      readonly noFace?: true;
    };

/**
 * Describes each distinct image once, batched, whatever the number of pairs it appears in: the largest face of each
 * photo, or with `faces: 'none'` the image as given. Returns the outcome per image (path, or the input itself for
 * buffers).
 */
export async function describeDistinct<T extends ImageInput>(
  model: VggFace,
  images: Iterable<T>,
  options: DescribePhotosOptions = {},
): Promise<Map<T, Described>> {
  const distinct = [...new Set(images)];
  const out = new Map<T, Described>();
  for await (const r of model.describePhotos(distinct, options)) {
    out.set(
      distinct[r.index],
      r.error
        ? { error: r.error, ...(r.noFace ? { noFace: r.noFace } : {}) }
        : { descriptor: r.descriptor, face: r.face },
    );
  }
  return out;
}
