/**
 * Flags of the commands that find faces in whole photos (describe, faces), parsed and validated in one place, from
 * the options' definitions (options.ts).
 */
import type { Command } from 'commander';
import { usageError } from '../errors.js';
import { FACE_OPTIONS, type AlignMode, MAX_THREADS } from '../options.js';
import * as check from '../validate.js';
import { progressBar, type Progress } from './progress.js';
import type { DownloadProgress } from '../util/download.js';
import { FaceDetector, type FaceDetectorOptions } from '../face/detector.js';
import type { Fit } from '../image/decode.js';
import { VggFace, type DescribePhotosOptions, type LoadOptions } from '../vggface.js';
import {
  addFlag,
  addImageOptions,
  addModelOptions,
  flagName,
  imageOptions,
  modelOptions,
  parseFlag,
  type ModelFlags,
} from './options.js';

export const DETECTORS = ['yunet', 'none'] as const;
export type DetectorName = (typeof DETECTORS)[number];

export interface FaceFlags {
  detector?: string;
  detectorModel?: string;
  align?: string;
  margin?: string;
  maxFaces?: string;
  minFaceSize?: string;
  minScore?: string;
}

/** The flags of defined face options, in the order of the help. */
const FACE_FLAGS = ['align', 'margin', 'maxFaces', 'minFaceSize', 'minScore'] as const;

/** Flags that only mean something when faces are detected. */
const DETECTION_FLAGS: readonly (keyof FaceFlags)[] = ['detectorModel', ...FACE_FLAGS];
const flagOf = (key: keyof FaceFlags) =>
  key === 'detectorModel' ? '--detector-model' : flagName(FACE_OPTIONS[key as (typeof FACE_FLAGS)[number]]);

export function addFaceOptions(cmd: Command, options: { detectorChoice: boolean }): Command {
  if (options.detectorChoice) {
    cmd.option(
      '--detector <name>',
      'yunet (default): find every face in each photo and describe it aligned; ' +
        'none: describe each image as given (a face crop)',
    );
  }
  cmd.option(
    '--detector-model <file>',
    'YuNet ONNX file (default: $VGGFACE_DETECTOR_MODEL, else the OpenCV Zoo model, downloaded into the cache on ' +
      'first use)',
  );
  for (const key of FACE_FLAGS) addFlag(cmd, FACE_OPTIONS[key]);
  return cmd;
}

export interface ParsedFaceOptions {
  readonly detector: DetectorName;
  readonly detectorModel: string | undefined;
  readonly align: AlignMode | undefined;
  readonly margin: number | undefined;
  readonly maxFaces: number | undefined;
  readonly minFaceSize: number | undefined;
  readonly minScore: number | undefined;
}

export function faceOptions(flags: FaceFlags): ParsedFaceOptions {
  const detector = flags.detector === undefined ? 'yunet' : check.oneOf('--detector', flags.detector, DETECTORS);
  if (detector === 'none') {
    const given = DETECTION_FLAGS.filter((k) => flags[k] !== undefined).map(flagOf);
    if (given.length > 0)
      throw usageError(`${given.join(', ')}: only with face detection, not with --detector none`, given[0]);
  }
  return {
    detector,
    detectorModel: flags.detectorModel,
    // Left undefined when not given: the library applies the defaults.
    align: parseFlag(FACE_OPTIONS.align, flags.align),
    margin: parseFlag(FACE_OPTIONS.margin, flags.margin),
    maxFaces: parseFlag(FACE_OPTIONS.maxFaces, flags.maxFaces),
    minFaceSize: parseFlag(FACE_OPTIONS.minFaceSize, flags.minFaceSize),
    minScore: parseFlag(FACE_OPTIONS.minScore, flags.minScore),
  };
}

/**
 * --fit is how an image given as a face crop is made square: refused when faces are detected, since a detected
 * face is cropped square around the face.
 */
export function checkFit(detector: DetectorName, fit: string | undefined): void {
  if (detector !== 'none' && fit !== undefined)
    throw usageError('--fit: only with --detector none (detected faces are cropped square around the face)', '--fit');
}

/**
 * The flags of the commands that describe every face of each photo, or each image as given (describe, queue submit).
 */
export interface DescribeInputFlags extends ModelFlags, FaceFlags {
  fit?: string;
  maxPixels?: string;
}

/** Adds the model's, the images' and the faces' flags (with --detector) of those commands, in the order of the help. */
export function addDescribeInputOptions(cmd: Command): Command {
  addModelOptions(cmd);
  addImageOptions(cmd);
  return addFaceOptions(cmd, { detectorChoice: true });
}

export interface DescribeInputs {
  /** Left undefined when not given: the library applies the defaults. */
  readonly image: { fit?: Fit; maxPixels?: number };
  readonly faces: ParsedFaceOptions;
  readonly load: LoadOptions;
}

/**
 * Those flags, checked (the images', the faces', then the model's) before anything opens; see also {@link checkFit}.
 */
export function describeInputs(flags: DescribeInputFlags): DescribeInputs {
  const image = imageOptions(flags);
  const faces = faceOptions(flags);
  const load = modelOptions(flags);
  return { image, faces, load };
}

/** Opens the detector, with a progress bar for its download (shown on a terminal only). */
export function openDetector(options: Omit<FaceDetectorOptions, 'onDownloadProgress'>): Promise<FaceDetector> {
  return FaceDetector.open({ ...options, onDownloadProgress: detectorDownloadProgress() });
}

/** A progress bar for the detector download (shown on a terminal only). */
export function detectorDownloadProgress(): (p: DownloadProgress) => void {
  let bar: Progress | undefined;
  return (p) => {
    bar ??= progressBar('Downloading the face detector', p.total ?? 0, { bytes: true });
    bar.update(p.received, p.total);
    if (p.total !== undefined && p.received >= p.total) bar.stop();
  };
}

/** --threads for the detector (the model options parse it for the descriptor model). */
export function threadsOption(flags: { threads?: string }): number | undefined {
  return flags.threads === undefined ? undefined : check.integer('--threads', flags.threads, 1, MAX_THREADS);
}

/** What commands that need one descriptor per photo (verify, eval, calibrate, gallery) pass to `describePhotos`. */
export interface PhotoHandling {
  readonly options: Pick<
    DescribePhotosOptions,
    'faces' | 'fit' | 'detector' | 'align' | 'margin' | 'minFaceSize' | 'minScore'
  >;
  /** The detector this opened (the caller closes it), when faces are detected. */
  readonly detector: FaceDetector | undefined;
}

/**
 * The detector first (small, and a missing one should fail before the large model loads), then the model;
 * nothing is left open when either fails. The caller closes both.
 */
export async function openPhotosAndModel(
  flags: FaceFlags & ModelFlags & { fit?: string },
): Promise<{ photos: PhotoHandling; model: VggFace }> {
  const load = modelOptions(flags); // validates the model flags before anything opens
  const photos = await openPhotoHandling(flags);
  try {
    return { photos, model: await VggFace.load(load) };
  } catch (err) {
    await photos.detector?.close();
    throw err;
  }
}

/** Opens the detector and the model as openPhotosAndModel does, runs `fn` with them, then closes both. */
export async function withPhotosAndModel<T>(
  flags: FaceFlags & ModelFlags & { fit?: string },
  fn: (photos: PhotoHandling, model: VggFace) => Promise<T>,
): Promise<T> {
  const { photos, model } = await openPhotosAndModel(flags);
  try {
    return await fn(photos, model);
  } finally {
    await model.close();
    await photos.detector?.close();
  }
}

/**
 * Parses the face flags and opens the detector first: it is small, and a missing one should fail before the
 * large model loads. With --detector none, images are described as given and --fit applies.
 */
export async function openPhotoHandling(
  flags: FaceFlags & { fit?: string; cacheDir?: string; threads?: string },
): Promise<PhotoHandling> {
  const faces = faceOptions(flags);
  if (faces.detector === 'none')
    return { options: { faces: 'none', fit: imageOptions(flags).fit }, detector: undefined };
  checkFit(faces.detector, flags.fit);
  if (faces.maxFaces !== undefined)
    throw usageError('--max-faces: this command uses the largest face of each photo', '--max-faces');
  const detector = await openDetector({
    model: faces.detectorModel,
    cacheDir: flags.cacheDir,
    threads: threadsOption(flags),
  });
  const { align, margin, minFaceSize, minScore } = faces;
  return { options: { faces: 'largest', detector, align, margin, minFaceSize, minScore }, detector };
}
