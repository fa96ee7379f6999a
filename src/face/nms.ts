/** Non-maximum suppression: of boxes that overlap much, keep the best scored. */
import type { Box } from './types.js';

/** Intersection over union of two boxes (0 when either is empty). */
export function iou(a: Box, b: Box): number {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  const union = a.width * a.height + b.width * b.height - inter;
  return union > 0 ? inter / union : 0;
}

/**
 * Greedy NMS as OpenCV's NMSBoxes: visit candidates by descending score and drop every one whose IoU with an
 * already kept box exceeds `iouThreshold`. Returns the kept items, best first.
 */
export function nonMaxSuppression<T extends { readonly box: Box; readonly score: number }>(
  items: readonly T[],
  iouThreshold: number,
  limit = Infinity,
): T[] {
  const sorted = [...items].sort((a, b) => b.score - a.score);
  const kept: T[] = [];
  for (const candidate of sorted) {
    if (kept.length >= limit) break;
    if (kept.every((k) => iou(k.box, candidate.box) <= iouThreshold)) kept.push(candidate);
  }
  return kept;
}
