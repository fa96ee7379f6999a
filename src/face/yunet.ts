/**
 * YuNet (OpenCV Zoo, face_detection_yunet_2023mar): its tensor interface and the decoding of its twelve outputs.
 * Input `input` float32 [1, 3, H, W], BGR 0-255, H and W multiples of 32. For each stride s in 8, 16, 32 the
 * outputs hold one row per cell of the (H/s) x (W/s) grid, row-major: `cls_s` and `obj_s` (one score each),
 * `bbox_s` (centre offset in cells, log width and height in cells) and `kps_s` (five points as cell offsets).
 */
import { VggFaceError } from '../errors.js';
import { LANDMARK_NAMES, type DetectedFace, type Landmarks, type Point } from './types.js';

export const YUNET_INPUT = 'input';
export const YUNET_STRIDES = [8, 16, 32] as const;
export const YUNET_OUTPUTS: readonly string[] = ['cls', 'obj', 'bbox', 'kps'].flatMap((k) =>
  YUNET_STRIDES.map((s) => `${k}_${s}`),
);
/** Input sizes must be multiples of the largest stride. */
export const YUNET_ALIGN = 32;

export type YuNetOutputs = Record<string, { readonly data: Float32Array }>;

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

/**
 * Decodes every cell whose score reaches `scoreThreshold` into a face, in the input tensor's pixel coordinates
 * (before NMS). `width` and `height` are the tensor's (padded) size. A cell scored 0 is no detection even at
 * threshold 0, and one whose box or landmarks are not finite numbers (exp overflow) has no place to crop.
 */
export function decodeYuNet(
  outputs: YuNetOutputs,
  width: number,
  height: number,
  scoreThreshold: number,
): DetectedFace[] {
  const faces: DetectedFace[] = [];
  for (const stride of YUNET_STRIDES) {
    const cols = width / stride;
    const rows = height / stride;
    const cls = outputs[`cls_${stride}`].data;
    const obj = outputs[`obj_${stride}`].data;
    const bbox = outputs[`bbox_${stride}`].data;
    const kps = outputs[`kps_${stride}`].data;
    if (cls.length !== rows * cols || bbox.length !== rows * cols * 4 || kps.length !== rows * cols * 10) {
      throw new VggFaceError(
        'E_MODEL',
        `YuNet output for stride ${stride}: expected ${rows * cols} cells for ` +
          `a ${width}x${height} input, got ${cls.length}`,
      );
    }
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const i = r * cols + c;
        const score = Math.sqrt(clamp01(cls[i]) * clamp01(obj[i]));
        if (!(score >= scoreThreshold) || score === 0) continue;
        const cx = (c + bbox[i * 4]) * stride;
        const cy = (r + bbox[i * 4 + 1]) * stride;
        const w = Math.exp(bbox[i * 4 + 2]) * stride;
        const h = Math.exp(bbox[i * 4 + 3]) * stride;
        if (!(w > 0 && h > 0 && Number.isFinite(cx) && Number.isFinite(cy) && Number.isFinite(w) && Number.isFinite(h)))
          continue;
        const points = LANDMARK_NAMES.map(
          (_, n): Point => [(kps[i * 10 + 2 * n] + c) * stride, (kps[i * 10 + 2 * n + 1] + r) * stride],
        );
        if (!points.every(([x, y]) => Number.isFinite(x) && Number.isFinite(y))) continue;
        faces.push({
          box: { x: cx - w / 2, y: cy - h / 2, width: w, height: h },
          score,
          landmarks: Object.fromEntries(LANDMARK_NAMES.map((name, n) => [name, points[n]])) as unknown as Landmarks,
        });
      }
    }
  }
  return faces;
}
