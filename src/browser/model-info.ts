/**
 * What the browser needs to know about an ONNX file before handing it to onnxruntime-web: its graph inputs and
 * outputs and its metadata, read from the bytes with the project's protobuf reader (initializers are skipped by
 * length, never decoded), then checked as Node checks a model file (runtime/model-cache.ts, modelInfoFromOnnx).
 *
 * The interface names and metadata keys are the builder's (onnx/builder.ts, which imports Node modules and so
 * cannot be bundled); test/browser-shared.test.ts asserts they are equal.
 */
import { VggFaceError } from '../errors.js';
import type { ModelInfo } from '../runtime/model-cache.js';
import type { Precision } from '../onnx/builder.js';
import { ProtoReader, WIRE_LEN, WIRE_VARINT } from '../proto/reader.js';

export const MODEL_INPUT = 'image';
export const MODEL_OUTPUTS = ['fc6', 'fc7_pre', 'fc7', 'fc8', 'descriptor'] as const;
export type ModelOutput = (typeof MODEL_OUTPUTS)[number];
export const PRECISIONS: readonly Precision[] = ['fp32', 'fp16', 'int8'];
export const META_KEYS = {
  preprocessing: 'vggface.preprocessing',
  precision: 'vggface.precision',
  topology: 'vggface.topology',
  weightLimit: 'vggface.quantization.weight_limit',
} as const;

export interface OnnxInterface {
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
}

/** Whether the bytes start as an ONNX ModelProto does (ir_version, field 1, a varint). */
export function looksLikeOnnx(bytes: Uint8Array): boolean {
  return bytes.length > 2 && bytes[0] === 0x08;
}

/** Graph inputs (initializers excluded), outputs and metadata_props of an ONNX model held in memory. */
export function readOnnxInterface(bytes: Uint8Array, label: string): OnnxInterface {
  if (!looksLikeOnnx(bytes))
    throw new VggFaceError(
      'E_MODEL',
      `${label}: not an ONNX model (${bytes.length === 0 ? 'empty' : `starts with bytes ${[...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}`})`,
      { input: label },
    );
  const r = new ProtoReader(bytes, label);
  const inputs: string[] = [];
  const outputs: string[] = [];
  const initializers = new Set<string>();
  const metadata: Record<string, string> = {};
  let irVersion = 0;
  let sawGraph = false;
  try {
    for (const f of r.fields()) {
      if (f.no === 1 && f.wire === WIRE_VARINT) irVersion = f.value;
      else if (f.no === 14 && f.wire === WIRE_LEN) {
        let key = '';
        let value = '';
        for (const g of r.fields(f.start, f.end)) {
          if (g.no === 1) key = r.string(g);
          else if (g.no === 2) value = r.string(g);
        }
        metadata[key] = value;
      } else if (f.no === 7 && f.wire === WIRE_LEN) {
        sawGraph = true;
        for (const g of r.fields(f.start, f.end)) {
          if (g.wire !== WIRE_LEN) continue;
          if (g.no === 11 || g.no === 12) {
            for (const h of r.fields(g.start, g.end))
              if (h.no === 1) (g.no === 11 ? inputs : outputs).push(r.string(h));
          } else if (g.no === 5) {
            for (const h of r.fields(g.start, g.end))
              if (h.no === 8 && h.wire === WIRE_LEN) initializers.add(r.string(h));
          }
        }
      }
    }
  } catch (err) {
    throw new VggFaceError(
      'E_MODEL',
      `${label}: not an ONNX model (${(err as Error).message.replace(`${label}: `, '')})`,
      { input: label, cause: err },
    );
  }
  if (!sawGraph || irVersion === 0)
    throw new VggFaceError('E_MODEL', `${label}: not an ONNX model: no ir_version or graph`, { input: label });
  return { inputs: inputs.filter((i) => !initializers.has(i)), outputs, metadata };
}

/** Checks that a model has the vggface interface and reads its metadata: Node's modelInfoFromOnnx, for bytes. */
export function modelInfo(label: string, onnx: OnnxInterface): ModelInfo {
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
  } catch {
    throw new VggFaceError('E_MODEL', `${label}: metadata ${META_KEYS.topology} is not valid JSON`, { input: label });
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
