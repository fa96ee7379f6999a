/** Issue 6: face detection + alignment per photo, and end-to-end describe on whole photos with the full-size model. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { mb, ROOT, runTask, WORK_DIR, type Section } from '../harness.js';
import { ensureFullCaffemodel } from '../fixtures.js';

const FACES_DIR = join(ROOT, '..', 'shared', 'data', 'faces');
/** The shared copy of the detector (the published file); $VGGFACE_DETECTOR_MODEL overrides it. */
const DETECTOR =
  process.env.VGGFACE_DETECTOR_MODEL || join(ROOT, '..', 'shared', 'models', 'face_detection_yunet_2023mar.onnx');

interface DetectResult {
  photos: number;
  facesPerRound: number;
  decode: { median: number; mean: number };
  detect: { median: number; mean: number; max: number };
  alignPerFace: { median: number; mean: number };
}
interface DescribeResult {
  photos: number;
  faces: number;
  photosPerSecond: number;
  facesPerSecond: number;
}

export const facesSection: Section = {
  name: 'faces',
  title: 'Faces in whole photos: detection, alignment, describe end to end (fp32)',
  async run(ctx) {
    const rounds = ctx.quick ? 1 : 3;
    ctx.log('detection + alignment, 1 thread');
    const one = await runTask<DetectResult>('faces-detect', { dir: FACES_DIR, model: DETECTOR, threads: 1, rounds });
    ctx.log('detection + alignment, all cores');
    const all = await runTask<DetectResult>('faces-detect', { dir: FACES_DIR, model: DETECTOR, rounds });
    const weights = await ensureFullCaffemodel();
    // Converted once and kept: this section measures describing, not conversion (the model section does that).
    const cacheDir = join(WORK_DIR, 'faces-cache');
    mkdirSync(cacheDir, { recursive: true });
    ctx.log('describe whole photos, full-size model');
    const e2e = await runTask<DescribeResult>('faces-describe', {
      dir: FACES_DIR,
      weights,
      cacheDir,
      detectorModel: DETECTOR,
      rounds: ctx.quick ? 1 : 3,
      limit: ctx.quick ? 16 : 64,
    });
    const row = (label: string, r: DetectResult) =>
      `| ${label} | ${r.decode.median.toFixed(1)} | ${r.detect.median.toFixed(1)} ` +
      `(mean ${r.detect.mean.toFixed(1)}, max ${r.detect.max.toFixed(1)}) | ${r.alignPerFace.median.toFixed(2)} |`;
    return [
      `Photos: the ${one.result.photos} JPEGs of \`../shared/data/faces\` (330-800 ` +
        `px, ${one.result.facesPerRound} faces at the default settings); YuNet 2023mar, detection at native ` +
        `size (all are under 1024 px), ${rounds} round(s) after a warm-up, medians per photo.`,
      '',
      '| ONNX Runtime threads | decode ms | detect ms | align ms per face |',
      '| --- | --- | --- | --- |',
      row('1', one.result),
      row('all cores', all.result),
      '',
      'End to end, `describeFaces` (decode + detect + align + VGG-Face fc7 of ' +
        'every face, batches of 8), full-size random weights: ' +
        `${e2e.result.photos} photos, ${e2e.result.faces} faces.`,
      '',
      '| measurement | value |',
      '| --- | --- |',
      `| photos/s | ${e2e.result.photosPerSecond.toFixed(2)} |`,
      `| faces/s | ${e2e.result.facesPerSecond.toFixed(2)} |`,
      `| peak RSS (model + detector loaded) | ${mb(e2e.maxRss)} |`,
    ].join('\n');
  },
};
