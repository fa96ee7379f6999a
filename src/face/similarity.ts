/**
 * 2-D similarity transforms (rotation, uniform scale, translation): u = A p + t with A = [[a, -b], [b, a]].
 * `fitSimilarity` is the least-squares fit of Umeyama (1991) restricted to proper rotations: for centred point sets
 * p' and q', a = sum(p'.q') / sum|p'|^2 and b = sum(p' x q') / sum|p'|^2.
 */
import type { Point } from './types.js';

export interface Similarity {
  readonly a: number;
  readonly b: number;
  readonly tx: number;
  readonly ty: number;
}

export function applySimilarity(s: Similarity, p: Point): Point {
  return [s.a * p[0] - s.b * p[1] + s.tx, s.b * p[0] + s.a * p[1] + s.ty];
}

export function invertSimilarity(s: Similarity): Similarity {
  const d = s.a * s.a + s.b * s.b;
  const a = s.a / d;
  const b = -s.b / d;
  return { a, b, tx: -(a * s.tx - b * s.ty), ty: -(b * s.tx + a * s.ty) };
}

/** Whether the transform and its inverse are finite: only such a transform can cut a crop. */
export function isInvertible(s: Similarity): boolean {
  const inv = invertSimilarity(s);
  return [s.a, s.b, s.tx, s.ty, inv.a, inv.b, inv.tx, inv.ty].every(Number.isFinite);
}

/** Scale factor of the transform. */
export function similarityScale(s: Similarity): number {
  return Math.hypot(s.a, s.b);
}

/** Rotation of the transform in degrees (counter-clockwise in a y-down image is negative). */
export function similarityAngle(s: Similarity): number {
  return (Math.atan2(s.b, s.a) * 180) / Math.PI;
}

/** Mean of each point set and the points centred on it. */
function centre(
  src: readonly Point[],
  dst: readonly Point[],
  what: string,
): { src: Point; dst: Point; p: Point[]; q: Point[] } {
  if (src.length !== dst.length || src.length < 2)
    throw new RangeError(`${what} needs two or more point pairs, got ${src.length} and ${dst.length}`);
  const mean = (ps: readonly Point[]): Point => [
    ps.reduce((s, p) => s + p[0], 0) / ps.length,
    ps.reduce((s, p) => s + p[1], 0) / ps.length,
  ];
  const ms = mean(src);
  const md = mean(dst);
  return {
    src: ms,
    dst: md,
    p: src.map((p) => [p[0] - ms[0], p[1] - ms[1]]),
    q: dst.map((q) => [q[0] - md[0], q[1] - md[1]]),
  };
}

/** The similarity with linear part (a, b) that maps the source centroid onto the destination centroid. */
function withShift(a: number, b: number, c: ReturnType<typeof centre>): Similarity {
  return { a, b, tx: c.dst[0] - (a * c.src[0] - b * c.src[1]), ty: c.dst[1] - (b * c.src[0] + a * c.src[1]) };
}

/** The similarity that maps `src` onto `dst` with the least squared error (exact for two distinct points). */
export function fitSimilarity(src: readonly Point[], dst: readonly Point[]): Similarity {
  const c = centre(src, dst, 'fitSimilarity');
  let dot = 0,
    cross = 0,
    norm = 0;
  c.p.forEach(([px, py], i) => {
    const [qx, qy] = c.q[i];
    dot += px * qx + py * qy;
    cross += px * qy - py * qx;
    norm += px * px + py * py;
  });
  if (norm === 0) throw new RangeError('fitSimilarity: the source points coincide');
  if (dot === 0 && cross === 0) throw new RangeError('fitSimilarity: the destination points coincide');
  return withShift(dot / norm, cross / norm, c);
}

/**
 * The similarity with a given rotation (cos, sin of the angle, scaled to any length) that maps `src` onto `dst`
 * with the least squared error: only scale and translation are fitted. Throws a RangeError when no positive scale
 * fits (the points lie the other way round under this rotation): a scale of zero or below has no inverse.
 */
export function fitScaleAndShift(src: readonly Point[], dst: readonly Point[], rotation: Point): Similarity {
  const c = centre(src, dst, 'fitScaleAndShift');
  const len = Math.hypot(rotation[0], rotation[1]);
  if (len === 0) throw new RangeError('fitScaleAndShift: zero rotation vector');
  const cos = rotation[0] / len;
  const sin = rotation[1] / len;
  let num = 0,
    norm = 0;
  c.p.forEach(([px, py], i) => {
    num += (cos * px - sin * py) * c.q[i][0] + (sin * px + cos * py) * c.q[i][1]; // (R p') . q'
    norm += px * px + py * py;
  });
  if (norm === 0) throw new RangeError('fitScaleAndShift: the source points coincide');
  const scale = num / norm;
  if (!(scale > 0) || !Number.isFinite(scale))
    throw new RangeError(
      `fitScaleAndShift: no positive scale maps the points under this rotation (least-squares scale ${scale})`,
    );
  return withShift(scale * cos, scale * sin, c);
}
