/**
 * What makes an ONNX file a vggface model (its input and output names and metadata), and the check of one, for
 * Node (runtime/model-cache.ts, reading a file) and the browser build (browser/model-info.ts, reading bytes) alike.
 * Pure, importing nothing Node-specific, so the bundle can take it. The names are the builder's (onnx/builder.ts,
 * which imports Node modules); test/browser-shared.test.ts asserts they are equal.
 */
import { VggFaceError } from '../errors.js';
import type { Precision, Preprocessing } from './builder.js';

export const MODEL_INPUT = 'image';
export const MODEL_OUTPUTS = ['fc6', 'fc7_pre', 'fc7', 'fc8', 'descriptor'] as const;
export type ModelOutput = (typeof MODEL_OUTPUTS)[number];
export const PRECISIONS: readonly Precision[] = ['fp32', 'fp16', 'int8'];
/** The metadata keys the check reads (the builder's META has these and more). */
export const META_KEYS = {
  preprocessing: 'vggface.preprocessing',
  precision: 'vggface.precision',
  topology: 'vggface.topology',
  weightLimit: 'vggface.quantization.weight_limit',
} as const;

export interface ModelInfo {
  readonly preprocessing: Preprocessing;
  readonly precision: Precision;
  /** Width of fc7, i.e. of the descriptor. */
  readonly descriptorSize: number;
  readonly topology: { conv: number[]; fc6: number; fc7: number; fc8: number };
  readonly metadata: Readonly<Record<string, string>>;
  /** int8 only: the largest |weight| (127 for models of builder 1, which record none). */
  readonly int8WeightLimit?: number;
}

/** What the check needs of a model, however it was read: graph inputs (initializers excluded), outputs, metadata. */
export interface OnnxInterface {
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
}

/** Checks that a model has the vggface interface and reads its metadata; `label` names it in messages. */
export function modelInfoFromInterface(label: string, onnx: OnnxInterface): ModelInfo {
  const missing = MODEL_OUTPUTS.filter((o) => !onnx.outputs.includes(o));
  if (!onnx.inputs.includes(MODEL_INPUT) || missing.length > 0) {
    throw new VggFaceError(
      'E_MODEL',
      `${label}: not a vggface model: expected input "${MODEL_INPUT}" and outputs ${MODEL_OUTPUTS.join(', ')}; it has inputs ${onnx.inputs.join(', ') || 'none'} and outputs ${onnx.outputs.join(', ') || 'none'} (convert weights with vggface convert)`,
      { input: label },
    );
  }
  const m = onnx.metadata;
  let topology: ModelInfo['topology'];
  try {
    topology = JSON.parse(m[META_KEYS.topology] ?? 'null') as ModelInfo['topology'];
  } catch (err) {
    throw new VggFaceError('E_MODEL', `${label}: metadata ${META_KEYS.topology} is not valid JSON`, {
      input: label,
      cause: err,
    });
  }
  if (!topology || typeof topology.fc7 !== 'number') {
    throw new VggFaceError(
      'E_MODEL',
      `${label}: missing ${META_KEYS.topology} metadata; convert the weights with vggface convert`,
      { input: label },
    );
  }
  const preprocessing = m[META_KEYS.preprocessing];
  if (preprocessing !== 'caffe' && preprocessing !== 'deepface') {
    throw new VggFaceError('E_MODEL', `${label}: unknown preprocessing "${preprocessing}" in metadata`, {
      input: label,
    });
  }
  const precision = m[META_KEYS.precision] ?? 'fp32';
  if (!(PRECISIONS as readonly string[]).includes(precision)) {
    throw new VggFaceError('E_MODEL', `${label}: unknown precision "${precision}" in metadata`, { input: label });
  }
  const info: ModelInfo = {
    preprocessing,
    precision: precision as Precision,
    descriptorSize: topology.fc7,
    topology,
    metadata: m,
  };
  if (precision !== 'int8') return info;
  const limit = Number(m[META_KEYS.weightLimit] ?? 127);
  if (!Number.isInteger(limit) || limit < 1 || limit > 127) {
    throw new VggFaceError(
      'E_MODEL',
      `${label}: ${META_KEYS.weightLimit} is "${m[META_KEYS.weightLimit]}", expected an integer 1-127`,
      { input: label },
    );
  }
  return { ...info, int8WeightLimit: limit };
}
