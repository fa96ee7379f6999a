/**
 * Synthetic face descriptors for the search benchmarks, generated on the fly (never all held twice): identity i
 * has a random direction, each of its faces is that direction plus noise, L2-normalised, like real descriptors
 * cluster by person. Deterministic from (face index, seed).
 */
import { mulberry32 } from '../src/util/random.js';

export const FACES_PER_IDENTITY = 5;

/** mulberry32 centred on 0: values in [-0.5, 0.5). */
function centred(seed: number): () => number {
  const r = mulberry32(seed);
  return () => r() - 0.5;
}

/** Writes face `i`'s descriptor into `out` (length = dimension). */
export function syntheticFace(i: number, out: Float32Array, seed = 1): Float32Array {
  // The identity's direction depends on the identity only; `seed` varies the noise (a query is a new face).
  const identity = Math.floor(i / FACES_PER_IDENTITY);
  const centre = centred(identity * 7919 + 1);
  const noise = centred(i * 104729 + seed * 31 + 17);
  let s = 0;
  for (let k = 0; k < out.length; k++) {
    const v = centre() + 0.6 * noise();
    out[k] = v;
    s += v * v;
  }
  const n = Math.sqrt(s);
  for (let k = 0; k < out.length; k++) out[k] /= n;
  return out;
}

/** A query near identity `identity` (a new face of that person). */
export function syntheticQuery(identity: number, dim: number, seed = 1): Float32Array {
  return syntheticFace(identity * FACES_PER_IDENTITY, new Float32Array(dim), seed + 1000);
}
