/**
 * What the browser needs to know about an ONNX file before handing it to onnxruntime-web: its graph inputs and
 * outputs and its metadata, read from the bytes with the project's protobuf reader (initializers are skipped by
 * length, never decoded), then checked by the same code as Node checks a model file (model/contract.ts).
 */
import { VggFaceError } from '../errors.js';
import type { OnnxInterface } from '../onnx/contract.js';
import { ProtoReader, WIRE_LEN, WIRE_VARINT } from '../proto/reader.js';

export {
  META_KEYS,
  MODEL_INPUT,
  MODEL_OUTPUTS,
  PRECISIONS,
  modelInfoFromInterface as modelInfo,
  type ModelOutput,
  type OnnxInterface,
} from '../onnx/contract.js';

/** Whether the bytes start as an ONNX ModelProto does (ir_version, field 1, a varint). */
export function looksLikeOnnx(bytes: Uint8Array): boolean {
  return bytes.length > 2 && bytes[0] === 0x08;
}

/** Graph inputs (initializers excluded), outputs and metadata_props of an ONNX model held in memory. */
export function readOnnxInterface(bytes: Uint8Array, label: string): OnnxInterface {
  if (!looksLikeOnnx(bytes))
    throw new VggFaceError(
      'E_MODEL',
      `${label}: not an ONNX model (${
        bytes.length === 0
          ? 'empty'
          : `starts with bytes ${[...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}`
      })`,
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
