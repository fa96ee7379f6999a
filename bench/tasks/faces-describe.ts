/** End-to-end `describeFaces` on whole photos: decode, detect, align, describe every face with the given model. */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { VggFace } from '../../src/vggface.js';
import { FaceDetector } from '../../src/face/detector.js';
import { finishTask, median, taskArgs } from '../harness.js';

const { dir, weights, cacheDir, detectorModel, rounds, limit } = taskArgs<{
  dir: string;
  weights: string;
  cacheDir: string;
  detectorModel: string;
  rounds: number;
  limit: number;
}>();
const photos = readdirSync(dir)
  .filter((f) => f.endsWith('.jpg'))
  .sort()
  .slice(0, limit)
  .map((f) => join(dir, f));
const model = await VggFace.load({ weights, cacheDir });
const detector = await FaceDetector.open({ model: detectorModel });
async function once(): Promise<{ ms: number; faces: number }> {
  let faces = 0;
  const t = performance.now();
  for await (const r of model.describeFaces(photos, { detector, batchSize: 8 })) {
    if (r.error) throw r.error;
    faces += r.faces.length;
  }
  return { ms: performance.now() - t, faces };
}
await once(); // warm-up
const runs: { ms: number; faces: number }[] = [];
for (let i = 0; i < rounds; i++) runs.push(await once());
await detector.close();
await model.close();
const ms = median(runs.map((r) => r.ms));
finishTask({
  photos: photos.length,
  faces: runs[0].faces,
  photosPerSecond: (photos.length / ms) * 1000,
  facesPerSecond: (runs[0].faces / ms) * 1000,
  rounds: runs.map((r) => r.ms),
});
