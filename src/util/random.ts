/**
 * xorshift32: a fast, deterministic generator (the same numbers on every platform), for synthetic calibration images
 * and test fixtures. Not for anything that needs unpredictability.
 */
export function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 1;
  /** The next value in [0, 1). */
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/**
 * mulberry32: uniform in [0, 1), 32-bit state, better mixed than xorshift32 (synthetic descriptors, benchmark sets).
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal value from a uniform generator (Box-Muller). */
export function gaussian(uniform: () => number): number {
  return Math.sqrt(-2 * Math.log(uniform() + 1e-300)) * Math.cos(2 * Math.PI * uniform());
}
