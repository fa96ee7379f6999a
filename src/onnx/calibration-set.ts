/**
 * The images an int8 conversion calibrates on: every image file in a directory (sorted by name, decoded and
 * brought to 224x224 as `describe` does), or, when none is given, the built-in synthetic set.
 * Images are produced one at a time, so a large directory is never held in memory; a first pass decodes each
 * one to hash the set and to report a file that is not an image before any model is built.
 */
import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileError, VggFaceError } from '../errors.js';
import { INPUT_SIZE } from '../weights/topology.js';
import { loadSquare, type Fit } from '../image/decode.js';
import { deadLeavesImage, SYNTHETIC_SET_NAME } from '../image/synthetic.js';

/** Size of the built-in set (measured fidelity was the same from 8 to 64 images: see README, Precision). */
export const BUILTIN_CALIBRATION_IMAGES = 32;
/** Names the built-in set in cache keys without generating it; change it whenever the generator or the size changes. */
export const BUILTIN_CALIBRATION_ID = 'builtin1';

export interface CalibrationSet {
  /** What the set is, for the model's metadata. */
  readonly source: string;
  readonly count: number;
  /** sha256 over the images' 224x224 RGB pixels, in order: identifies exactly what the calibration saw. */
  readonly sha256: string;
  /** The 224x224 RGB images, produced one at a time. */
  images(): AsyncGenerator<Uint8Array>;
}

/** Runs `produce` once to hash (and so check) every image; `images()` produces them again on demand. */
async function preparedSet(
  source: string,
  count: number,
  produce: () => AsyncGenerator<Uint8Array>,
): Promise<CalibrationSet> {
  const hash = createHash('sha256');
  for await (const img of produce()) hash.update(img);
  return { source, count, sha256: hash.digest('hex'), images: produce };
}

export function builtinCalibrationSet(count = BUILTIN_CALIBRATION_IMAGES): Promise<CalibrationSet> {
  return preparedSet(`${SYNTHETIC_SET_NAME} (${count} images)`, count, async function* () {
    for (let i = 0; i < count; i++) yield deadLeavesImage(i + 1, INPUT_SIZE);
  });
}

/**
 * The image files of `dir` (not recursive; hidden files and sub-directories are skipped). Errors name the
 * directory or the file: missing, not a directory, no files, or a file that is not a decodable image.
 */
export async function directoryCalibrationSet(
  dir: string,
  options: { fit?: Fit; maxPixels?: number } = {},
): Promise<CalibrationSet> {
  let names: string[];
  try {
    const st = await stat(dir);
    if (!st.isDirectory()) {
      throw new VggFaceError(
        'E_USAGE',
        `--calibration ${dir}: not a directory; expected a directory of calibration images`,
        { input: dir },
      );
    }
    names = await readdir(dir);
  } catch (err) {
    if (err instanceof VggFaceError) throw err;
    throw fileError(dir, err);
  }
  const files: string[] = [];
  for (const name of names.sort()) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    if ((await stat(path)).isFile()) files.push(path);
  }
  if (files.length === 0) {
    throw new VggFaceError(
      'E_USAGE',
      `--calibration ${dir}: the directory has no image files; give a directory of face images (JPEG, PNG, ...)`,
      { input: dir },
    );
  }
  return preparedSet(`directory ${dir} (${files.length} images)`, files.length, async function* () {
    for (const file of files) {
      try {
        const img = await loadSquare(file, file, INPUT_SIZE, {
          fit: options.fit ?? 'crop',
          maxPixels: options.maxPixels,
        });
        yield img.data;
      } catch (err) {
        if (err instanceof VggFaceError) {
          throw new VggFaceError(err.code, `calibration image ${err.message}`, { input: file, cause: err });
        }
        throw err;
      }
    }
  });
}
