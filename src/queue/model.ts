/**
 * The identity a run records of the model that describes it, so descriptors of two models never mix: the sha256 of
 * the source weights (as the ONNX metadata `vggface.source.sha256` records it), the preprocessing, the precision,
 * and for int8 the calibration set's sha256. The same weights in another file layout hash differently and count as
 * another model: that is the safe side.
 */
import { basename } from 'node:path';
import { META } from '../onnx/contract.js';
import { modelInfoFromOnnx, resolveModel, type ModelInfo } from '../model/cache.js';
import { envValue } from '../util/env.js';
import { sha256File } from '../util/hash.js';
import { defaultCacheDir } from '../util/paths.js';
import { detectFormat } from '../weights/formats.js';
import type { LoadOptions, VggFace } from '../vggface.js';
import { modelKey, type ModelBinding } from './store.js';

function fromInfo(info: ModelInfo, fallbackSha: string, fallbackName: string): ModelBinding {
  const m = info.metadata;
  const base = {
    sha256: m[META.sha256] ?? fallbackSha,
    preprocessing: info.preprocessing,
    precision: info.precision,
    ...(info.precision === 'int8' && m[META.calibrationSha256] ? { calibration: m[META.calibrationSha256] } : {}),
  };
  return { key: modelKey(base), ...base, name: m[META.sourceName] ?? fallbackName };
}

/** The identity of a loaded model (what a worker has). */
export async function bindingOfModel(model: Pick<VggFace, 'info' | 'modelPath'>): Promise<ModelBinding> {
  const sha = model.info.metadata[META.sha256] ?? (await sha256File(model.modelPath));
  return fromInfo(model.info, sha, basename(model.modelPath));
}

/**
 * The identity of the model a submitter names, without loading it: a converted .onnx is read for its metadata,
 * weights are hashed (int8 weights are converted, and cached, since the calibration is part of the identity).
 * Undefined when no weights are named: the first worker binds the run.
 */
export async function bindingOfWeights(
  options: Pick<LoadOptions, 'weights' | 'format' | 'preprocessing' | 'precision' | 'cacheDir' | 'threads'>,
): Promise<ModelBinding | undefined> {
  const weights = options.weights ?? envValue('weights');
  if (!weights) return undefined;
  const format = options.format ?? (await detectFormat(weights));
  if (format === 'onnx' || options.precision === 'int8') {
    const resolved = await resolveModel({
      weights,
      format,
      cacheDir: options.cacheDir ?? defaultCacheDir(),
      preprocessing: options.preprocessing,
      precision: options.precision,
      threads: options.threads,
    });
    const info = format === 'onnx' ? modelInfoFromOnnx(weights) : resolved.info;
    return fromInfo(info, await sha256File(weights), basename(weights));
  }
  const base = {
    sha256: await sha256File(weights),
    preprocessing: options.preprocessing ?? 'caffe',
    precision: options.precision ?? 'fp32',
  };
  return { key: modelKey(base), ...base, name: basename(weights) };
}
