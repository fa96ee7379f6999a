/** Per-photo time of decode, detection and alignment of every face, on the shared photos (one thread or more). */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { alignFace, resolveAlignOptions } from '../../src/face/align.js';
import { FaceDetector, resolveDetectOptions } from '../../src/face/detector.js';
import { decodeImage } from '../../src/image/decode.js';
import { finishTask, median, taskArgs } from '../harness.js';

const { dir, model, threads, rounds } = taskArgs<{ dir: string; model: string; threads?: number; rounds: number }>();
const photos = readdirSync(dir)
  .filter((f) => f.endsWith('.jpg'))
  .map((f) => join(dir, f));
const detector = await FaceDetector.open({ model, threads });
const detect = resolveDetectOptions({});
const align = resolveAlignOptions({});
const decodeMs: number[] = [];
const detectMs: number[] = [];
const alignMs: number[] = [];
let faces = 0;
for (let r = 0; r < rounds + 1; r++) {
  for (const photo of photos) {
    const t0 = performance.now();
    const image = await decodeImage(photo, photo);
    const t1 = performance.now();
    const found = await detector.detectDecoded(image, detect);
    const t2 = performance.now();
    for (const face of found) await alignFace(image, face, align);
    const t3 = performance.now();
    if (r === 0) continue; // warm-up round
    decodeMs.push(t1 - t0);
    detectMs.push(t2 - t1);
    alignMs.push((t3 - t2) / Math.max(1, found.length));
    faces += found.length;
  }
}
await detector.close();
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
finishTask({
  photos: photos.length,
  facesPerRound: faces / rounds,
  decode: { median: median(decodeMs), mean: mean(decodeMs) },
  detect: { median: median(detectMs), mean: mean(detectMs), max: Math.max(...detectMs) },
  alignPerFace: { median: median(alignMs), mean: mean(alignMs) },
});
