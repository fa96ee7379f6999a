/**
 * One identity per network, whatever layout carried it: the sha256 of the canonical weights.
 *
 * The same network stored as a Caffe model, a Keras HDF5 file or a PyTorch state dict has different bytes (and file
 * hashes), but every reader turns it into the same canonical weight set (types.ts). The identity hashes that set:
 *
 *   "vggface-weights-v1\n" + one line per layer "<name> <weight shape> <bias shape>\n", then for each of the 16 layers
 *   in network order the weight and then the bias as float32 little-endian, in canonical layout (conv OIHW, fc
 *   (out, in), fc6 over pool5 in C,H,W order), with conv1_1's input channels in RGB order.
 *
 * BGR-trained layouts (Caffe, Torch7, the Keras and HDF5 files) store conv1_1's input channels reversed; the identity
 * reverses them back (64 x 3 x 3 x 3 values for the full network), so a Caffe copy and a PyTorch copy of the same
 * network agree. The mean a file records is not part of it (MatConvNet records one, the others do not; it is kept in
 * the
 * model's metadata). Tensors are hashed as views of the arrays the reader made: nothing of the weights is copied.
 */
import { createHash, type Hash } from 'node:crypto';
import { endianness } from 'node:os';
import { reverseInputChannels } from './layout.js';
import type { Tensor, WeightSet } from './types.js';

/** Bumped if the definition above ever changes (identities of different versions never compare equal). */
export const IDENTITY_DOMAIN = 'vggface-weights-v1';

const LITTLE_ENDIAN = endianness() === 'LE';
const CHUNK = 1 << 22; // values per update on big-endian hosts, where each chunk is byte-swapped into a scratch buffer

function updateTensor(hash: Hash, t: Tensor, scratch: { buf?: Buffer }): void {
  const d = t.data;
  if (LITTLE_ENDIAN) {
    hash.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    return;
  }
  scratch.buf ??= Buffer.alloc(CHUNK * 4);
  for (let start = 0; start < d.length; start += CHUNK) {
    const n = Math.min(CHUNK, d.length - start);
    for (let i = 0; i < n; i++) scratch.buf.writeFloatLE(d[start + i], i * 4);
    hash.update(scratch.buf.subarray(0, n * 4));
  }
}

/** The identity of a weight set: 64 hex digits (see the module comment for exactly what is hashed). */
export function weightsIdentity(weights: Pick<WeightSet, 'layers' | 'inputChannelOrder'>): string {
  const hash = createHash('sha256');
  hash.update(`${IDENTITY_DOMAIN}\n`);
  for (const l of weights.layers) hash.update(`${l.name} ${l.weight.shape.join('x')} ${l.bias.shape.join('x')}\n`);
  const scratch: { buf?: Buffer } = {};
  for (const l of weights.layers) {
    const w = l.name === 'conv1_1' && weights.inputChannelOrder === 'BGR' ? reverseInputChannels(l.weight) : l.weight;
    updateTensor(hash, w, scratch);
    updateTensor(hash, l.bias, scratch);
  }
  return hash.digest('hex');
}

/**
 * How every command (convert, inspect, weights verify) prints an identity: `identity:` padded to the report's value
 * column, then the identity in full (a prefix would not tell two networks apart), or, for a model converted before
 * identities, why there is none.
 */
export const NO_IDENTITY = 'none recorded (converted before identities: convert the weights again)';

export function identityLine(identity: string | null | undefined, width: number): string {
  return `${'identity:'.padEnd(width)}${identity ?? NO_IDENTITY}`;
}
