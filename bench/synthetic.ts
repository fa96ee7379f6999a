/**
 * Synthetic face descriptors for the search benchmarks, generated on the fly (never all held twice): identity i
 * has a random direction, each of its faces is that direction plus noise, L2-normalised, like real descriptors
 * cluster by person. Deterministic from (face index, seed).
 */
export const FACES_PER_IDENTITY = 5;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
}

/** Writes face `i`'s descriptor into `out` (length = dimension). */
export function syntheticFace(i: number, out: Float32Array, seed = 1): Float32Array {
  // The identity's direction depends on the identity only; `seed` varies the noise (a query is a new face).
  const identity = Math.floor(i / FACES_PER_IDENTITY);
  const centre = mulberry32(identity * 7919 + 1);
  const noise = mulberry32(i * 104729 + seed * 31 + 17);
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
