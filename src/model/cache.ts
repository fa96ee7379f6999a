/**
 * Resolves what the user gave (a weight file in any layout, a converted .onnx, or nothing) to an ONNX file
 * ready for the engine. Conversions are cached under <cache>/models, keyed by the source file's sha256,
 * the preprocessing, the precision (for int8 also the calibration method and the calibration set's hash) and the
 * builder version, so the second load of the same weights skips conversion.
 */
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { VggFaceError } from '../errors.js';
import {
  BUILDER_VERSION,
  META,
  modelInfoFromInterface,
  type ModelInfo,
  type Precision,
  type Preprocessing,
} from '../onnx/contract.js';
import { DEFAULT_CALIBRATION_METHOD, type CalibrationMethod } from '../onnx/calibrate.js';
import { convertModel } from '../onnx/convert-model.js';
import { BUILTIN_CALIBRATION_ID, directoryCalibrationSet, type CalibrationSet } from '../onnx/calibration-set.js';
import { readOnnxInfo, type OnnxInfo } from '../onnx/inspect.js';
import { sha256File } from '../util/hash.js';
import { detectFormat } from '../weights/formats.js';
import type { FormatId, ReadOptions } from '../weights/types.js';

export type { ModelInfo } from '../onnx/contract.js';

export interface ResolvedModel {
  readonly modelPath: string;
  readonly info: ModelInfo;
  /** 'onnx': the user gave a model; 'cached': a previous conversion was reused; 'converted': converted now. */
  readonly origin: 'onnx' | 'cached' | 'converted';
  readonly sourceFormat: FormatId;
}

export interface ResolveOptions {
  readonly weights: string;
  readonly cacheDir: string;
  readonly format?: FormatId;
  readonly preprocessing?: Preprocessing;
  readonly readOptions?: ReadOptions;
  /** Weight precision of the converted model (default fp32). */
  readonly precision?: Precision;
  /** int8: a directory of calibration images (default: the built-in synthetic set). */
  readonly calibration?: string;
  readonly calibrationMethod?: CalibrationMethod;
  /** ONNX Runtime threads for an int8 conversion's calibration run. */
  readonly threads?: number;
  /**
   * Told when a cached conversion is there but cannot be used, before the weights are converted again (minutes for
   * the full-size model); default: a line on stderr.
   */
  readonly log?: (message: string) => void;
}

const defaultLog = (message: string) => process.stderr.write(`vggface: ${message}\n`);

/** Checks that an ONNX file has the vggface interface and reads its metadata (as the browser checks bytes). */
export function modelInfoFromOnnx(path: string, onnx: OnnxInfo = readOnnxInfo(path)): ModelInfo {
  return modelInfoFromInterface(path, onnx);
}

/**
 * Where a conversion is cached. `variant` names what else the model depends on: the precision, and for int8
 * the calibration method and the calibration set (the built-in set's version, or the first 16 hex digits of the
 * directory's hash).
 */
export function cachedModelPath(
  cacheDir: string,
  sha256: string,
  preprocessing: Preprocessing,
  variant = 'fp32',
): string {
  return join(cacheDir, 'models', `${sha256}-${preprocessing}-${variant}-b${BUILDER_VERSION}.onnx`);
}

export async function resolveModel(options: ResolveOptions): Promise<ResolvedModel> {
  const format = options.format ?? (await detectFormat(options.weights));
  if (format === 'onnx') {
    const info = modelInfoFromOnnx(options.weights);
    if (options.calibration !== undefined) {
      throw new VggFaceError(
        'E_USAGE',
        `${options.weights}: already a converted model; calibration images are used when converting weights to int8`,
        { input: options.calibration },
      );
    }
    if (options.precision && options.precision !== info.precision) {
      throw new VggFaceError(
        'E_USAGE',
        `${options.weights}: this model is ${info.precision}, ${options.precision} was asked for; ` +
          `convert the weights with vggface convert --precision ${options.precision}`,
        { input: options.weights },
      );
    }
    if (options.preprocessing && options.preprocessing !== info.preprocessing) {
      throw new VggFaceError(
        'E_USAGE',
        `${options.weights}: this model was converted with ${info.preprocessing} ` +
          `preprocessing, ${options.preprocessing} was asked for; convert the weights again with ` +
          `--preprocessing ${options.preprocessing}`,
        { input: options.weights },
      );
    }
    return { modelPath: options.weights, info, origin: 'onnx', sourceFormat: 'onnx' };
  }
  const preprocessing = options.preprocessing ?? 'caffe';
  const precision = options.precision ?? 'fp32';
  const sha256 = await sha256File(options.weights);
  let calibrationSet: CalibrationSet | undefined;
  let variant: string = precision;
  if (precision === 'int8') {
    // The built-in set is named by its version, so a cached load does not generate it; a directory by its hash.
    calibrationSet = options.calibration === undefined ? undefined : await directoryCalibrationSet(options.calibration);
    const setId = calibrationSet ? calibrationSet.sha256.slice(0, 16) : BUILTIN_CALIBRATION_ID;
    variant = `int8-${options.calibrationMethod ?? DEFAULT_CALIBRATION_METHOD}-${setId}`;
  } else if (options.calibration !== undefined) {
    throw new VggFaceError('E_USAGE', `calibration images are only used for int8 models, not ${precision}`, {
      input: options.calibration,
    });
  }
  const cached = cachedModelPath(options.cacheDir, sha256, preprocessing, variant);
  if (await isFile(cached)) {
    const log = options.log ?? defaultLog;
    let info: ModelInfo | undefined;
    try {
      info = modelInfoFromOnnx(cached);
    } catch (err) {
      // A damaged cache entry (disk full, killed writer on a filesystem without atomic rename): convert again, and say
      // why, or a load that should take a second takes minutes unexplained.
      const reason = (err instanceof Error ? err.message : String(err)).replace(`${cached}: `, '');
      log(`${cached}: cached model unusable (${reason}); converting ${options.weights} again`);
    }
    // A conversion written before network identities records none: converted again (once), so that calibrations,
    // galleries and the server key on the identity.
    if (info?.metadata[META.identity] !== undefined)
      return { modelPath: cached, info, origin: 'cached', sourceFormat: format };
    if (info)
      log(`${cached}: cached model converted before network identities; converting ${options.weights} again (once)`);
  }
  await mkdir(join(options.cacheDir, 'models'), { recursive: true }).catch((err: unknown) => {
    throw new VggFaceError('E_IO', `${options.cacheDir}: cannot create the model cache: ${(err as Error).message}`, {
      input: options.cacheDir,
      cause: err,
    });
  });
  await convertModel(options.weights, cached, {
    preprocessing,
    format,
    sha256,
    readOptions: options.readOptions,
    precision,
    calibrationSet,
    calibrationMethod: options.calibrationMethod,
    threads: options.threads,
  });
  return { modelPath: cached, info: modelInfoFromOnnx(cached), origin: 'converted', sourceFormat: format };
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
