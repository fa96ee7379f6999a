/**
 * What describing returns, one outcome per input: shared by the Node library (vggface.ts), the browser build and
 * the batching they share (describe-model.ts), so the types sit below all three.
 */
import type { VggFaceError } from './errors.js';
import type { DetectedFace } from './face/types.js';

/** One input's outcome in `VggFace.describeEach`. */
export type DescribeResult =
  | { readonly index: number; readonly label: string; readonly descriptor: Float32Array; readonly error?: undefined }
  | { readonly index: number; readonly label: string; readonly descriptor?: undefined; readonly error: VggFaceError };

/** One face of a photo and its descriptor. */
export interface FaceDescription {
  readonly face: DetectedFace;
  readonly descriptor: Float32Array;
}

/** One photo's outcome in `VggFace.describeFaces`: its faces (largest first, possibly none) or its error. */
export type DescribeFacesResult =
  | {
      readonly index: number;
      readonly label: string;
      readonly faces: readonly FaceDescription[];
      readonly error?: undefined;
    }
  | { readonly index: number; readonly label: string; readonly faces?: undefined; readonly error: VggFaceError };

/** One photo's outcome in `VggFace.describePhotos`: its descriptor (and the face it is of), or its error. */
export type DescribePhotoResult = DescribeResult & {
  readonly face?: DetectedFace;
  /**
   * Set with the error of a photo that was read but has no face (not an unreadable one): pair evaluation skips those.
   */
  readonly noFace?: true;
};
