/**
 * `vggface/internal`: the building blocks under the public API (src/index.ts), for the CLI, the server, the
 * benchmarks and the tests. No stability promise: names here change with the implementation.
 *
 * Unlike the root entry, this one loads the gallery stores and with them `pg` and `better-sqlite3`.
 */

// Gallery stores and the embedded index.
export { openGalleryStore, removeIdentity } from './gallery/gallery.js';
export { SqliteStore } from './gallery/sqlite-store.js';
export { PostgresStore } from './gallery/postgres-store.js';
export { DescriptorIndex, type IndexedFace } from './gallery/descriptor-index.js';
export type { GalleryStore, GalleryMeta, NewFace, AddOutcome, StoreSearchOptions } from './gallery/types.js';

// Distances from partial sums, folds, verification and evaluation helpers.
export { distanceFromSums, pairSums, type PairSums } from './distance/distance.js';
export { assignFolds } from './distance/lfw-protocol.js';
export { describeDistinct, type Described } from './verify/verify.js';
export { checkPairImages } from './verify/pairs.js';
export {
  measurePairs,
  evaluateMetric,
  type PairDistances,
  type MeasureOptions,
  type SkippedPair,
} from './verify/evaluate.js';
export { loadCalibrations, saveCalibrations, calibrationPath, type Calibration } from './verify/thresholds.js';

// Images (the label argument names the input in errors).
export { decodeImage, loadSquare, DEFAULT_MAX_PIXELS, type DecodeOptions, type ResizeOptions } from './image/decode.js';

// Faces: the photo pipeline.
export type { PhotoFaces, AlignedFace } from './face/pipeline.js';

// Weights: topology, identity, the official download and the cache.
export { validateTopology, FULL_WIDTHS } from './weights/topology.js';
export { VGG_FACE_MEAN_RGB } from './weights/types.js';
export { weightsIdentity } from './weights/identity.js';
export { ensureOfficialWeights, cachedWeights, resolveSource, OFFICIAL_WEIGHTS_URL } from './weights/official.js';

// Environment: every VGGFACE_* variable.
export { envValue, readEnv, ENV_VARIABLES, type EnvVariable } from './util/env.js';
