/**
 * Compile-only (never run): what the package root must not offer. Each `@ts-expect-error` line fails the compilation
 * (TS2578, unused directive) the day its name is exported from the root again or the type accepts the value: internals
 * live in `vggface/internal`, and a gallery stores fp32 or fp16, never int8.
 */
import * as vggface from 'vggface';
import * as internal from 'vggface/internal';
import { Gallery, type VggFace, type GalleryOpenOptions, type StoragePrecision } from 'vggface';

// Stores, the index and the store-level gallery functions.
// @ts-expect-error internal: vggface/internal
vggface.SqliteStore;
// @ts-expect-error internal: vggface/internal
vggface.PostgresStore;
// @ts-expect-error internal: vggface/internal
vggface.DescriptorIndex;
// @ts-expect-error internal: vggface/internal
vggface.openGalleryStore;
// @ts-expect-error internal: vggface/internal
vggface.removeIdentity;

// Metrics, verification and evaluation helpers.
// @ts-expect-error internal: vggface/internal
vggface.distanceFromSums;
// @ts-expect-error internal: vggface/internal
vggface.assignFolds;
// @ts-expect-error internal: vggface/internal
vggface.describeDistinct;
// @ts-expect-error internal: vggface/internal
vggface.checkPairImages;
// @ts-expect-error internal: vggface/internal
vggface.measurePairs;
// @ts-expect-error internal: vggface/internal
vggface.evaluateMetric;
// @ts-expect-error internal: vggface/internal
vggface.loadCalibrations;
// @ts-expect-error internal: vggface/internal
vggface.saveCalibrations;
// @ts-expect-error internal: vggface/internal
vggface.calibrationPath;

// Images (their label argument is internal), weights, downloads, the environment.
// @ts-expect-error internal: vggface/internal
vggface.decodeImage;
// @ts-expect-error internal: vggface/internal
vggface.loadSquare;
// @ts-expect-error internal: vggface/internal
vggface.validateTopology;
// @ts-expect-error internal: vggface/internal
vggface.FULL_WIDTHS;
// @ts-expect-error internal: vggface/internal
vggface.ensureOfficialWeights;
// @ts-expect-error internal: vggface/internal
vggface.envValue;
// @ts-expect-error internal: vggface/internal
vggface.readEnv;
// @ts-expect-error internal: vggface/internal
vggface.ENV_VARIABLES;

// The ambiguous Precision is gone: ModelPrecision (fp32, fp16, int8) and StoragePrecision (fp32, fp16).
// @ts-expect-error renamed: ModelPrecision or StoragePrecision
export type Ambiguous = vggface.Precision;
// @ts-expect-error renamed: MODEL_PRECISIONS or STORAGE_PRECISIONS
vggface.PRECISIONS;
// @ts-expect-error internal type: vggface/internal
export type Store = vggface.GalleryStore;

// A gallery's storage precision is not the model's.
// @ts-expect-error a gallery stores fp32 or fp16
export const int8Storage: StoragePrecision = 'int8';
// @ts-expect-error a gallery stores fp32 or fp16
export const int8Options: GalleryOpenOptions = { db: 'people.db', precision: 'int8' };
declare const model: VggFace;
// @ts-expect-error a gallery stores fp32 or fp16
await Gallery.open(model, { db: 'people.db', precision: 'int8' });

// What the root lacks, the internal entry has (these must compile).
const store = await internal.openGalleryStore('people.db');
await internal.removeIdentity(store, 'alice');
const image = await internal.decodeImage('photo.jpg', 'photo.jpg');
export const internals = [
  internal.SqliteStore,
  internal.PostgresStore,
  internal.DescriptorIndex,
  internal.distanceFromSums,
  image.width,
];
