/**
 * describeFaces's options, split into describe's, detection's and alignment's and checked in one order, for the
 * Node library (vggface.ts) and the browser build (browser/vggface.ts), so both refuse the same value first. Each
 * has its own FaceDetector class, so each says what a detector is. Pure, importing nothing Node-specific.
 */
import { normalizeDescribeOptions, type DescribeOptions, type NormalizedDescribeOptions } from './describe-options.js';
import { invalidParameterError } from './errors.js';
import { resolveAlignOptions, type AlignOptions, type ResolvedAlignOptions } from './face/align-transform.js';
import { resolveDetectOptions, type DetectOptions, type ResolvedDetectOptions } from './face/detection.js';
import * as check from './validate.js';

export type FacesOptions<D> = Omit<DescribeOptions, 'fit'> &
  DetectOptions &
  Omit<AlignOptions, 'size'> & { readonly detector?: D };

export interface ResolvedFacesOptions<D> {
  /** The detector given, if any. */
  readonly detector: D | undefined;
  readonly describe: NormalizedDescribeOptions;
  readonly detect: ResolvedDetectOptions;
  readonly align: ResolvedAlignOptions;
}

/** Splits and checks the options; faces are aligned to `size` x `size` crops. */
export function resolveFacesOptions<D>(
  options: FacesOptions<D>,
  isDetector: (value: unknown) => value is D,
  size: number,
): ResolvedFacesOptions<D> {
  if (!check.isPlainObject(options)) throw invalidParameterError('options', 'an object', options);
  const { detector, align, margin, minScore, nmsThreshold, detectionSize, minFaceSize, maxFaces, ...describeOptions } =
    options;
  const describe = normalizeDescribeOptions(describeOptions, 'crop'); // fit is unused: aligned crops are already square
  const detect = resolveDetectOptions({
    minScore,
    nmsThreshold,
    detectionSize,
    minFaceSize,
    maxFaces,
    maxPixels: describe.maxPixels,
  });
  const alignment = resolveAlignOptions({ align, margin, size });
  if (detector !== undefined && !isDetector(detector))
    throw invalidParameterError('detector', 'a FaceDetector', detector);
  return { detector, describe, detect, align: alignment };
}
