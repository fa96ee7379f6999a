/** Flags of the commands that find faces in whole photos (describe, faces), parsed and validated in one place. */
import type { Command } from 'commander';
import { usageError } from '../errors.js';
import { ALIGN_MODES, DEFAULT_MARGIN, type AlignMode } from '../face/align.js';
import * as check from '../validate.js';
import { progressBar, type Progress } from './progress.js';
import type { DownloadProgress } from '../util/download.js';
import { DEFAULT_MIN_SCORE, FaceDetector } from '../face/detector.js';
import { VggFace, type DescribePhotosOptions } from '../vggface.js';
import { imageOptions, modelOptions, type ModelFlags } from './options.js';

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

/** Flags that only mean something when faces are detected. */
const DETECTION_FLAGS: readonly (keyof FaceFlags)[] = [
  'detectorModel',
  'align',
  'margin',
  'maxFaces',
  'minFaceSize',
  'minScore',
];
const flagName = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

export function addFaceOptions(cmd: Command, options: { detectorChoice: boolean }): Command {
  if (options.detectorChoice) {
    cmd.option(
      '--detector <name>',
      'yunet (default): find every face in each photo and describe it aligned; none: describe each image as given (a face crop)',
    );
  }
  return cmd
    .option(
      '--detector-model <file>',
      'YuNet ONNX file (default: $VGGFACE_DETECTOR_MODEL, else the OpenCV Zoo model, downloaded into the cache on first use)',
    )
    .option(
      '--align <mode>',
      `how faces are made upright: ${ALIGN_MODES.join(', ')} (default eyes: eye line level, size from all five landmarks; 5pt: least-squares fit of the five landmarks; none: the box, unrotated)`,
    )
    .option(
      '--margin <fraction>',
      `room around the face in the crop, as a fraction of the face (default ${DEFAULT_MARGIN})`,
    )
    .option('--max-faces <n>', 'keep at most the n largest faces of each photo')
    .option('--min-face-size <px>', 'ignore faces whose box is smaller than this, in photo pixels')
    .option(
      '--min-score <score>',
      `ignore detections scored below this, 0..1 (default ${DEFAULT_MIN_SCORE}; 0 keeps every candidate the detector scores above 0: thousands per photo)`,
    );
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
    const given = DETECTION_FLAGS.filter((k) => flags[k] !== undefined).map(flagName);
    if (given.length > 0)
      throw usageError(`${given.join(', ')}: only with face detection, not with --detector none`, given[0]);
  }
  return {
    detector,
    detectorModel: flags.detectorModel,
    align: flags.align === undefined ? undefined : check.oneOf('--align', flags.align, ALIGN_MODES),
    margin: flags.margin === undefined ? undefined : check.number('--margin', flags.margin, 0, 4),
    maxFaces: flags.maxFaces === undefined ? undefined : check.integer('--max-faces', flags.maxFaces, 1, 100_000),
    minFaceSize:
      flags.minFaceSize === undefined ? undefined : check.number('--min-face-size', flags.minFaceSize, 0, 1e6),
    minScore: flags.minScore === undefined ? undefined : check.number('--min-score', flags.minScore, 0, 1),
  };
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
  return flags.threads === undefined ? undefined : check.integer('--threads', flags.threads, 1, 1024);
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
  if (flags.fit !== undefined)
    throw usageError('--fit: only with --detector none (detected faces are cropped square around the face)', '--fit');
  if (faces.maxFaces !== undefined)
    throw usageError('--max-faces: this command uses the largest face of each photo', '--max-faces');
  const detector = await FaceDetector.open({
    model: faces.detectorModel,
    cacheDir: flags.cacheDir,
    threads: threadsOption(flags),
    onDownloadProgress: detectorDownloadProgress(),
  });
  const { align, margin, minFaceSize, minScore } = faces;
  return { options: { faces: 'largest', detector, align, margin, minFaceSize, minScore }, detector };
}
