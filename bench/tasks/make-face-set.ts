/**
 * Makes the benchmark's face set (bench/face-sets.ts): fc7 descriptors (4096-d, L2-normalised) of augmented aligned
 * crops of the photos in a directory, with a given network. Each photo is decoded and its faces detected once; the
 * largest face's alignment transform is composed with each augmentation's similarity, so every variant is cut from
 * the original pixels in one bilinear step (no double resampling), then flipped and colour-jittered.
 *
 * Only the largest face of a photo is used: the pivot CSV names photos, not faces, so a second face of a group
 * photo would be a person of unknown identity (2 of the 64 photos have several faces).
 *
 * Writes `<output>.f32` (rows x dim, float32 little-endian), `<output>.pre.f32` (fc7 before its ReLU, divided by the
 * same norm as the descriptor, so ReLU of a row is that row of the descriptors: the face generator fits its Gaussian
 * there, where the zeros come out of the ReLU rather than being modelled) and `<output>.json`, through temporary files
 * renamed at the end, so an interrupted run leaves nothing that looks finished. Progress goes to stderr.
 */
import { closeSync, openSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { VggFace } from '../../src/vggface.js';
import { FaceDetector } from '../../src/face/detector.js';
import { resolveDetectOptions } from '../../src/face/detection.js';
import { alignmentTransform, resolveAlignOptions, warpToCrop } from '../../src/face/align.js';
import { decodeImage } from '../../src/image/decode.js';
import type { RawImage } from '../../src/image/types.js';
import type { Similarity } from '../../src/face/similarity.js';
import type { Precision } from '../../src/onnx/contract.js';
import { augmentation, augmentTransform, jitterPixels, personsFromPairs, type AugmentRanges } from '../face-augment.js';
import { finishTask, taskArgs } from '../harness.js';

export interface MakeFaceSetArgs {
  readonly dir: string;
  readonly pivot: string;
  readonly weights: string;
  readonly precision: Precision;
  readonly cacheDir: string;
  readonly detectorModel: string;
  /** Path without extension. */
  readonly output: string;
  readonly augmentations: number;
  readonly seed: number;
  readonly ranges: AugmentRanges;
  /** Recorded in the sidecar: what the weights are. */
  readonly weightsDescription: string;
  readonly weightsSha256: string;
  readonly batchSize?: number;
}

const SIZE = 224;
const args = taskArgs<MakeFaceSetArgs>();
const t0 = performance.now();
const log = (m: string) =>
  process.stderr.write(`[make-face-set ${((performance.now() - t0) / 1000).toFixed(0)} s] ${m}\n`);

const names = readdirSync(args.dir)
  .filter((f) => /\.jpe?g$/i.test(f))
  .sort();
const persons = personsFromPairs(args.pivot, names);
const model = await VggFace.load({ weights: args.weights, precision: args.precision, cacheDir: args.cacheDir });
const loadMs = performance.now() - t0;
log(`model ${model.modelPath} (${model.origin}, ${(loadMs / 1000).toFixed(1)} s)`);
const dim = model.dimension('fc7');
const detector = await FaceDetector.open({ model: args.detectorModel });
const detect = resolveDetectOptions({});
const align = resolveAlignOptions({ size: SIZE });

// Detection first (all photos), so the describe loop below is one steady stream.
interface Source {
  name: string;
  photo: number;
  person: number;
  image: RawImage;
  transform: Similarity;
  facesFound: number;
  score: number;
}
const sources: Source[] = [];
const skipped: string[] = [];
for (const [photo, name] of names.entries()) {
  const image = await decodeImage(join(args.dir, name), name);
  const faces = await detector.detectDecoded(image, detect);
  if (faces.length === 0) {
    skipped.push(name);
    log(`${name}: no face found, skipped`);
    continue;
  }
  sources.push({
    name,
    photo,
    person: persons[photo],
    image,
    transform: alignmentTransform(faces[0], align),
    facesFound: faces.length,
    score: faces[0].score,
  });
}
await detector.close();
const detectMs = performance.now() - t0 - loadMs;
log(`${sources.length} of ${names.length} photos with a face (${(detectMs / 1000).toFixed(1)} s)`);

const rows = sources.length * args.augmentations;
const tmpData = `${args.output}.f32.tmp-${process.pid}`;
const tmpPre = `${args.output}.pre.f32.tmp-${process.pid}`;
const tmpMeta = `${args.output}.json.tmp-${process.pid}`;
const fd = openSync(tmpData, 'w');
const fdPre = openSync(tmpPre, 'w');
let maxReluError = 0;
try {
  const batch = args.batchSize ?? 8;
  const per = SIZE * SIZE * 3;
  const jobs: { s: Source; k: number }[] = [];
  for (const s of sources) for (let k = 0; k < args.augmentations; k++) jobs.push({ s, k });
  const prepare = async (start: number) => {
    const part = jobs.slice(start, start + batch);
    const pixels = new Uint8Array(part.length * per);
    await Promise.all(
      part.map(async ({ s, k }, i) => {
        const aug = augmentation(args.ranges, args.seed, s.photo, k);
        const crop = await warpToCrop(s.image, augmentTransform(s.transform, aug, SIZE), SIZE);
        jitterPixels(crop.data, SIZE, aug, pixels.subarray(i * per, (i + 1) * per));
      }),
    );
    return { pixels, count: part.length };
  };
  const describeStart = performance.now();
  let next = prepare(0);
  let lastLog = describeStart;
  for (let start = 0; start < jobs.length; start += batch) {
    const { pixels, count } = await next;
    // The model runs in its worker thread; the next batch is cut meanwhile (sharp, libuv pool).
    const running = model.run(pixels, count, ['descriptor', 'fc7_pre']);
    if (start + batch < jobs.length) next = prepare(start + batch);
    const { descriptor, fc7_pre: pre } = await running;
    if (descriptor.length !== count * dim || pre.length !== count * dim)
      throw new Error(`internal: ${descriptor.length} descriptor values for ${count} faces of ${dim}`);
    for (let r = 0; r < count; r++) {
      const row = pre.subarray(r * dim, (r + 1) * dim);
      let n = 0;
      for (const v of row) if (v > 0) n += v * v;
      const inv = n > 0 ? 1 / Math.sqrt(n) : 0;
      for (let i = 0; i < dim; i++) {
        row[i] *= inv;
        maxReluError = Math.max(maxReluError, Math.abs(Math.max(0, row[i]) - descriptor[r * dim + i]));
      }
    }
    writeSync(fd, new Uint8Array(descriptor.buffer, descriptor.byteOffset, descriptor.byteLength));
    writeSync(fdPre, new Uint8Array(pre.buffer, pre.byteOffset, pre.byteLength));
    const done = start + count;
    const now = performance.now();
    if (now - lastLog > 30_000 || done === jobs.length) {
      lastLog = now;
      const rate = (done / (now - describeStart)) * 1000;
      log(
        `${done} / ${jobs.length} faces, ${rate.toFixed(2)} faces/s, ` +
          `about ${((jobs.length - done) / rate / 60).toFixed(1)} min left`,
      );
    }
  }
  const describeMs = performance.now() - describeStart;
  closeSync(fd);
  closeSync(fdPre);
  await model.close();
  const identity: number[] = [];
  const photo: number[] = [];
  const variant: number[] = [];
  for (const { s, k } of jobs) {
    identity.push(s.person);
    photo.push(s.photo);
    variant.push(k);
  }
  const identities = new Set(identity).size;
  const meta = {
    format: 'float32 little-endian, rows x dim, row-major',
    dim,
    rows,
    identities,
    augmentations: args.augmentations,
    seed: args.seed,
    ranges: args.ranges,
    augmentationNotes:
      'variant 0 of each face is the plain aligned crop; others: rotation/scale/shift ' +
      'composed with the alignment transform (one bilinear warp from the original photo), ' +
      'then horizontal flip and brightness/contrast/per-channel gain',
    faces: 'largest face of each photo only (the pivot CSV names photos, not faces)',
    identityRule: 'union-find over the Yes pairs of the pivot CSV; a photo in no Yes pair is its own person',
    model: {
      weights: args.weights,
      weightsSha256: args.weightsSha256,
      weightsBytes: statSync(args.weights).size,
      description: args.weightsDescription,
      precision: args.precision,
      onnx: model.modelPath,
      output: 'descriptor (fc7, L2-normalised)',
    },
    detector: args.detectorModel,
    photos: sources.map((s) => ({
      name: s.name,
      person: s.person,
      facesFound: s.facesFound,
      score: Number(s.score.toFixed(4)),
    })),
    skipped,
    identity,
    photo: photo.map((p) => sources.findIndex((s) => s.photo === p)),
    preActivation: {
      file: `${args.output}.pre.f32`,
      what: 'fc7_pre / ||fc7||: ReLU of a row is the descriptor row',
      maxReluError,
    },
    variant,
    timing: {
      loadMs: Math.round(loadMs),
      detectMs: Math.round(detectMs),
      describeMs: Math.round(describeMs),
      totalMs: Math.round(performance.now() - t0),
      facesPerSecond: (rows / describeMs) * 1000,
    },
    createdAt: new Date().toISOString(),
  };
  writeFileSync(tmpMeta, JSON.stringify(meta));
  renameSync(tmpPre, `${args.output}.pre.f32`);
  renameSync(tmpData, `${args.output}.f32`);
  renameSync(tmpMeta, `${args.output}.json`);
  log(`wrote ${args.output}.f32 (${rows} x ${dim}, ${identities} identities)`);
  finishTask({ rows, dim, identities, timing: meta.timing });
} catch (err) {
  rmSync(tmpData, { force: true });
  rmSync(tmpPre, { force: true });
  rmSync(tmpMeta, { force: true });
  throw err;
}
