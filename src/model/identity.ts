/**
 * The model identity: what a model's calibrations (verify/thresholds.ts) and galleries (gallery/gallery.ts) are keyed
 * by, and what the server names a model by. It is the network's identity (sha256 of its canonical weights, ONNX
 * metadata `vggface.weights.identity`: the same whichever layout the model was converted from) and its preprocessing;
 * models converted before identities existed are keyed by the sha256 of the weight file (`vggface.source.sha256`),
 * kept as a legacy key.
 */
import { sha256File } from '../util/hash.js';
import { META, type ModelInfo, type Preprocessing } from '../onnx/contract.js';

/** What a calibration and a gallery are keyed by. */
export interface ModelIdentity {
  /**
   * The network's identity: sha256 of its canonical weights (`vggface.weights.identity`). For a model converted
   * before identities existed: sha256 of the source weight file, or of the ONNX file when it records none.
   */
  readonly sha256: string;
  readonly preprocessing: Preprocessing;
  /** `<sha256>-<preprocessing>`: the file name of the model's calibrations, and the model key of its galleries. */
  readonly key: string;
  /**
   * Keys the same model had before identities (`<source file sha256>-<preprocessing>`): what they hold still applies.
   */
  readonly legacyKeys?: readonly string[];
  /** Source file name, for messages. */
  readonly name: string;
}

export async function modelIdentity(model: {
  readonly info: ModelInfo;
  readonly modelPath: string;
}): Promise<ModelIdentity> {
  const m = model.info.metadata;
  const fileSha256 = m[META.sha256];
  const sha256 = m[META.identity] ?? fileSha256 ?? (await sha256File(model.modelPath));
  const preprocessing = model.info.preprocessing;
  const legacyKeys = fileSha256 !== undefined && fileSha256 !== sha256 ? [`${fileSha256}-${preprocessing}`] : [];
  return {
    sha256,
    preprocessing,
    key: `${sha256}-${preprocessing}`,
    legacyKeys,
    name: m[META.sourceName] ?? model.modelPath,
  };
}

/** Whether a stored key (a gallery's model key, a calibration's) belongs to this model. */
export function isModelKey(id: ModelIdentity, key: string): boolean {
  return key === id.key || (id.legacyKeys ?? []).includes(key);
}
