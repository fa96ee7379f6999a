/**
 * Decision thresholds: given explicitly, calibrated for a model by `vggface calibrate`, or (deepface preprocessing
 * only) deepface's published VGG-Face values. Caffe-mode descriptors have no published threshold that applies to
 * them, so without calibration or an explicit value there is none, and the caller is told so.
 *
 * Calibrations are stored per model in `<cache>/thresholds/<identity>-<preprocessing>.json`, keyed by the network's
 * identity (sha256 of its canonical weights, ONNX metadata `vggface.weights.identity`: the same whichever layout the
 * model was converted from) and its preprocessing. Calibrations made before identities existed are keyed by the sha256
 * of the weight file (`vggface.source.sha256`); they are still read (reading never writes), and the next calibration
 * writes them, with the new entry, under the identity, which is read first from then on. The old file is left as it is:
 * an older vggface sharing the cache still finds it, and nothing of it is lost if the new file cannot be written.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileError, formatError, VggFaceError } from '../errors.js';
import type { Preprocessing } from '../onnx/contract.js';
import type { ModelIdentity } from '../model/identity.js';
import { checkOutputPath } from '../util/files.js';
import type { Metric } from '../distance/distance.js';

/** deepface's thresholds for VGG-Face (4096-d, L2-normalised descriptors), from its verification.find_threshold. */
export const DEEPFACE_THRESHOLDS: Readonly<Record<Metric, number>> = {
  cosine: 0.68,
  euclidean: 1.17,
  euclidean_l2: 1.17,
  angular: 0.39,
};

export interface Calibration {
  readonly metric: Metric;
  readonly threshold: number;
  /** Accuracy of the threshold on the calibration pairs, and the 10-fold accuracy. */
  readonly accuracy: number;
  readonly crossValidatedAccuracy: number;
  readonly pairs: number;
  readonly pairsFile: string;
  readonly date: string;
}

interface CalibrationFile {
  readonly model: { sha256: string; preprocessing: Preprocessing; name: string };
  readonly thresholds: Partial<Record<Metric, Calibration>>;
}

export function calibrationPath(cacheDir: string, id: ModelIdentity): string {
  return join(cacheDir, 'thresholds', `${id.key}.json`);
}

/** The model's calibrations: those under its identity, else those stored under its legacy key (file sha256). */
export async function loadCalibrations(
  cacheDir: string,
  id: ModelIdentity,
): Promise<Partial<Record<Metric, Calibration>>> {
  for (const key of [id.key, ...(id.legacyKeys ?? [])]) {
    const found = await loadCalibrationFile(join(cacheDir, 'thresholds', `${key}.json`));
    if (found) return found;
  }
  return {};
}

async function loadCalibrationFile(path: string): Promise<Partial<Record<Metric, Calibration>> | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fileError(path, err);
  }
  try {
    const parsed = JSON.parse(text) as CalibrationFile;
    return parsed.thresholds ?? {};
  } catch (err) {
    throw formatError(path, `not valid JSON (${(err as Error).message}); delete it and calibrate again`, err);
  }
}

/**
 * Records calibrations for a model (other metrics' entries are kept); written to a temporary file, then renamed.
 * The file must be a regular file (or absent) and none of `inputs` (the pairs file, the images, the model).
 */
export async function saveCalibrations(
  cacheDir: string,
  id: ModelIdentity,
  entries: readonly Calibration[],
  inputs: readonly string[] = [],
): Promise<string> {
  const path = calibrationPath(cacheDir, id);
  checkOutputPath(path, inputs); // before reading it too: a FIFO there would block the read
  const thresholds = { ...(await loadCalibrations(cacheDir, id)) };
  for (const e of entries) thresholds[e.metric] = e;
  const body: CalibrationFile = {
    model: { sha256: id.sha256, preprocessing: id.preprocessing, name: id.name },
    thresholds,
  };
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await mkdir(join(cacheDir, 'thresholds'), { recursive: true });
    await writeFile(tmp, JSON.stringify(body, null, 2) + '\n');
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw fileError(path, err, 'write');
  }
  return path;
}

export type ThresholdSource = 'explicit' | 'calibrated' | 'deepface';

export interface ResolvedThreshold {
  readonly threshold: number;
  readonly metric: Metric;
  readonly source: ThresholdSource;
}

/** Explicit, else calibrated for this model, else deepface's published value in deepface mode; else a clear error. */
export async function resolveThreshold(options: {
  metric: Metric;
  explicit?: number;
  cacheDir: string;
  identity: ModelIdentity;
}): Promise<ResolvedThreshold> {
  const { metric, identity } = options;
  if (options.explicit !== undefined) return { threshold: options.explicit, metric, source: 'explicit' };
  const calibrated = (await loadCalibrations(options.cacheDir, identity))[metric];
  if (calibrated) return { threshold: calibrated.threshold, metric, source: 'calibrated' };
  if (identity.preprocessing === 'deepface')
    return { threshold: DEEPFACE_THRESHOLDS[metric], metric, source: 'deepface' };
  throw new VggFaceError(
    'E_NOT_FOUND',
    `no calibrated ${metric} threshold for model ${identity.name} ` +
      `(sha256 ${identity.sha256.slice(0, 12)}, caffe preprocessing): ` +
      'run "vggface calibrate --pairs FILE" with labelled pairs, or pass --threshold; ' +
      "deepface's published thresholds apply only to --preprocessing deepface",
    { input: identity.name },
  );
}
