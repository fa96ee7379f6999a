/**
 * Compile-only (never run): user code against the package root, as a user imports it. `npx tsc -p test/types` checks
 * it against the built declarations (dist/src/index.d.ts, what a user gets), the project build against the sources.
 * The first part is the README's Library example, line for line (test/public-api.test.ts checks that it still is);
 * the second names the option and result types a user writes.
 */
import { VggFace, Gallery, FaceDetector, distance } from 'vggface';
import {
  ALIGN_MODES,
  DEEPFACE_THRESHOLDS,
  MODEL_PRECISIONS,
  STORAGE_PRECISIONS,
  UNKNOWN,
  VggFaceError,
  convertWeightsToOnnx,
  evaluatePairs,
  modelIdentity,
  readPairList,
  resolveThreshold,
  rocAuc,
  rocCurve,
  equalErrorRate,
  rocSvg,
  verifyDescriptors,
  type AlignMode,
  type AlignOptions,
  type DescribedImage,
  type DescribePhotoResult,
  type DescribePhotosOptions,
  type DetectedFace,
  type DownloadProgress,
  type ErrorCode,
  type FoldedPair,
  type GallerySearchResult,
  type IdentitySummary,
  type LoadOptions,
  type Metric,
  type ModelPrecision,
  type StoragePrecision,
} from 'vggface';

declare const buffer: Buffer;
declare const paths: string[];
declare function use(...values: unknown[]): void;

// --- README, "Library" ---

// any layout, or a converted .onnx; precision: 'int8' ...
const model = await VggFace.load({ weights: 'VGG_FACE.caffemodel' });

// Face crops as given: one Float32Array(4096) per image, L2-normalised.
const [a, b] = await model.describe(['crop-a.jpg', 'crop-b.jpg']);
const fc8 = await model.describe(buffer, { layer: 'fc8', normalize: false });
console.log(distance(a, b, 'cosine'));

// Whole photos: every face, with its box, landmarks and score (YuNet; detectorModel in load() or
// $VGGFACE_DETECTOR_MODEL).
for await (const photo of model.describeFaces(['group.jpg'])) {
  if (photo.error) console.error(photo.error.message);
  else for (const { face, descriptor } of photo.faces) console.log(face.box, descriptor.length);
}

// One descriptor per photo (the largest face), as verify and galleries use them; streaming, a bad photo yields its
// error.
for await (const r of model.describePhotos(paths, { batchSize: 8 })) if (!r.error) use(r.descriptor, r.face);

// Galleries: SQLite file or postgres:// URL.
const gallery = await Gallery.open(model, { db: 'people.db' });
await gallery.add('alice', ['alice1.jpg', 'alice2.jpg']);
const { identity, distance: d } = await gallery.search('who.jpg', { k: 5, threshold: 0.3 });
await gallery.close();

const detector = await FaceDetector.open(); // detection alone, without the 550 MB model
const faces = await detector.detect('group.jpg');
await detector.close();
await model.close();

// --- The types a user names ---

use(fc8, identity, d, faces);

// The model's precision includes int8; a gallery's storage does not.
const precision: ModelPrecision = 'int8';
const progress = (p: DownloadProgress): void => use(p.received, p.total, p.resumedFrom);
const load: LoadOptions = { precision, calibration: 'crops/', onDownloadProgress: progress };
const int8 = await VggFace.load(load);
await convertWeightsToOnnx('VGG_FACE.caffemodel', 'vgg-face-int8.onnx', { preprocessing: 'caffe', precision: 'int8' });
const modelPrecisions: readonly ModelPrecision[] = MODEL_PRECISIONS;
const storage: StoragePrecision = 'fp16';
const storagePrecisions: readonly StoragePrecision[] = STORAGE_PRECISIONS;
use(modelPrecisions, storagePrecisions);

// Detection and alignment options, and one descriptor per photo.
const mode: AlignMode = ALIGN_MODES[0];
const align: AlignOptions = { align: mode, margin: 0.3 };
const options: DescribePhotosOptions = { ...align, minScore: 0.8, maxFaces: 1, batchSize: 4 };
const described: DescribedImage[] = [];
for await (const r of int8.describePhotos(paths, options)) {
  const result: DescribePhotoResult = r;
  if (result.error) use(result.error.code, result.noFace);
  else {
    const face: DetectedFace | undefined = result.face;
    use(face?.box, face?.landmarks);
    described.push({ label: result.label, contentHash: 'sha256 of the photo', descriptor: result.descriptor });
  }
}

// A gallery of descriptors described elsewhere, stored in fp16.
const known = await Gallery.open(int8, { db: 'people16.db', precision: storage, create: true });
await known.addDescriptors('bob', described);
const search = { threshold: 0.3, metric: 'angular' } as const;
const found: GallerySearchResult = await known.searchDescriptor(described[0].descriptor, search);
const listed: IdentitySummary[] = await known.list();
use(found.identity === UNKNOWN, found.matches[0]?.verified, listed);
await known.close();

// Verification, thresholds and evaluation.
const metric: Metric = 'cosine';
const threshold = await resolveThreshold({ metric, cacheDir: '.cache', identity: await modelIdentity(int8) });
use(verifyDescriptors(a, b, metric, threshold.threshold).verified, DEEPFACE_THRESHOLDS[metric]);
const list = await readPairList('pairs.txt', 'lfw');
const scored: FoldedPair[] = list.pairs.map((p, i) => ({ distance: i / 10, same: p.same ?? false, fold: i % 10 }));
const report = evaluatePairs(scored);
const curve = rocCurve(scored);
const { eer } = equalErrorRate(curve);
const plot = { title: 'LFW', auc: rocAuc(curve), eer, differentPairs: report.differentPairs };
use(report.accuracy, rocSvg(curve, plot));

// Errors carry a stable code.
try {
  await int8.describe('missing.jpg');
} catch (err) {
  if (err instanceof VggFaceError) {
    const code: ErrorCode = err.code;
    use(code, err.input, err.exitCode);
  }
}
await int8.close();
