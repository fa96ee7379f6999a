/**
 * The model contract: what makes an ONNX file a vggface model (its input and output names, precisions,
 * preprocessing modes and metadata keys), written by the builder (onnx/builder.ts, onnx/quantize.ts) and checked
 * here, for Node (model/cache.ts, reading a file) and the browser build (browser/model-info.ts, reading bytes) alike.
 * Defined once, here. Pure, importing nothing Node-specific, so the bundle can take it.
 */
import { VggFaceError } from '../errors.js';

export type Preprocessing = 'caffe' | 'deepface';
export const PREPROCESSING: readonly Preprocessing[] = ['caffe', 'deepface'];

export const MODEL_INPUT = 'image';
export const MODEL_OUTPUTS = ['fc6', 'fc7_pre', 'fc7', 'fc8', 'descriptor'] as const;
export type ModelOutput = (typeof MODEL_OUTPUTS)[number];

/**
 * How the weights are stored: `fp32` as read; `fp16` as float16 (half the file), cast to float32 when ONNX Runtime
 * loads the model, so it computes in fp32 (a graph computing in fp16 was measured no faster: ONNX Runtime's x86 CPU
 * kernels are fp32 and it inserts casts; see the precision benchmark); `int8` quantized (see onnx/quantize.ts).
 */
export type Precision = 'fp32' | 'fp16' | 'int8';
export const PRECISIONS: readonly Precision[] = ['fp32', 'fp16', 'int8'];

/** Bumped whenever the graph changes, so cached conversions from older builders are not reused. */
export const BUILDER_VERSION = 2; // 2: int8 weights in -64..64

/** Metadata keys the builder writes (and `inspect` shows). */
export const META = {
  producer: 'vggface.producer_version',
  builder: 'vggface.builder_version',
  format: 'vggface.source.format',
  layout: 'vggface.source.layout',
  dtype: 'vggface.source.dtype',
  channelOrder: 'vggface.source.channel_order',
  sha256: 'vggface.source.sha256',
  /** The network's identity: sha256 of its canonical weights (weights/identity.ts), the same for every layout. */
  identity: 'vggface.weights.identity',
  sourceName: 'vggface.source.name',
  preprocessing: 'vggface.preprocessing',
  mean: 'vggface.mean_rgb',
  precision: 'vggface.precision',
  topology: 'vggface.topology',
  quantScheme: 'vggface.quantization.scheme',
  /** Largest |int8 weight|; absent in int8 models of builder 1, whose weights took -127..127. */
  weightLimit: 'vggface.quantization.weight_limit',
  calibrationMethod: 'vggface.quantization.calibration.method',
  calibrationSha256: 'vggface.quantization.calibration.sha256',
  calibrationSource: 'vggface.quantization.calibration.source',
  calibrationImages: 'vggface.quantization.calibration.images',
  activationRanges: 'vggface.quantization.activation_ranges',
} as const;

/** The metadata keys the check reads (META's, which has these and more). */
export const META_KEYS = {
  preprocessing: META.preprocessing,
  precision: META.precision,
  topology: META.topology,
  weightLimit: META.weightLimit,
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
      `${label}: not a vggface model: expected input "${MODEL_INPUT}" and ` +
        `outputs ${MODEL_OUTPUTS.join(', ')}; it has inputs ${onnx.inputs.join(', ') || 'none'} and ` +
        `outputs ${onnx.outputs.join(', ') || 'none'} (convert weights with vggface convert)`,
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
