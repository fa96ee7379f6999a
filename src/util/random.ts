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
