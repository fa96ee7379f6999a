/**
 * The package's public API (`import ... from 'vggface'`): the model, the face detector and alignment, galleries,
 * distances, verification and evaluation, weights and conversion, errors, and their option and result types.
 * Each name is documented in the module that defines it.
 *
 * Everything here is a promise: `test/public-api.test.ts` lists the runtime values (at most 45, types aside) and
 * `test/types/` holds user code that must compile against this entry, so adding or removing a name is a deliberate
 * change. The building blocks the CLI, the server, the benchmarks and the tests use (stores, the descriptor index,
 * image decoding, calibration files, topology checks ...) are in `vggface/internal` (src/internal.ts), with no
 * stability promise.
 *
 * Importing this entry loads neither `pg` nor `better-sqlite3`: a gallery loads its store's module when it is opened.
 */

// The model: load weights once, describe many images (face crops, whole photos, one face per photo).
export {
  VggFace,
  LAYERS,
  l2normalize,
  type Layer,
  type LoadOptions,
  type DescribeOptions,
  type DescribeResult,
  type DescribeFacesOptions,
  type DescribeFacesResult,
  type FaceDescription,
  type DescribePhotosOptions,
  type DescribePhotoResult,
} from './vggface.js';
export { FITS, type Fit, type ImageInput } from './image/decode.js';
export type { RawImage } from './image/types.js';
export type { ModelInfo } from './model/cache.js';
export type { DownloadProgress } from './util/download.js';
// ModelPrecision: the weights of a converted model (VggFace.load, convertWeightsToOnnx): fp32, fp16 or int8.
export {
  PRECISIONS as MODEL_PRECISIONS,
  PREPROCESSING,
  MODEL_INPUT,
  MODEL_OUTPUTS,
  type Precision as ModelPrecision,
  type Preprocessing,
  type ModelOutput,
} from './onnx/contract.js';

// Faces in whole photos: detection (YuNet) and alignment.
export { FaceDetector, type FaceDetectorOptions, type DetectOptions } from './face/detector.js';
export { ALIGN_MODES, type AlignOptions, type AlignMode } from './face/align-transform.js';
export type { DetectedFace, Box, Landmarks, Point } from './face/types.js';

// Galleries: known faces in a SQLite file or PostgreSQL + pgvector.
export {
  Gallery,
  defaultGalleryPath,
  type GalleryModel,
  type GalleryOpenOptions,
  type GallerySearchOptions,
  type GallerySearchResult,
  type AddedImage,
  type DescribedImage,
} from './gallery/gallery.js';
// StoragePrecision: how a gallery stores its descriptors, fp32 or fp16 (not the model's precision).
export { PRECISIONS as STORAGE_PRECISIONS, type Precision as StoragePrecision } from './gallery/scorer.js';
export { UNKNOWN, type IdentitySummary } from './gallery/types.js';
export type { IdentityMatch } from './gallery/descriptor-index.js';
export type { PostgresOpenOptions } from './gallery/postgres-store.js';

// Distances, verification and thresholds.
export { distance, METRICS, DEFAULT_METRIC, type Metric } from './distance/distance.js';
export { verifyDescriptors, type Verification } from './verify/verify.js';
export {
  DEEPFACE_THRESHOLDS,
  resolveThreshold,
  type ResolvedThreshold,
  type ThresholdSource,
} from './verify/thresholds.js';
export { modelIdentity, type ModelIdentity } from './model/identity.js';

// Evaluation: pair lists, ROC curves, folds.
export { readPairList, type ImagePair, type PairList } from './verify/pairs.js';
export {
  evaluatePairs,
  FARS,
  type EvaluationReport,
  type FoldResult,
  type FoldedPair,
} from './distance/lfw-protocol.js';
export {
  rocCurve,
  rocAuc,
  equalErrorRate,
  tarAtFar,
  accuracyAt,
  bestThreshold,
  type RocPoint,
  type ScoredPair,
} from './distance/roc.js';
export { rocSvg, writeRocPlot, type RocPlotInfo } from './distance/roc-plot.js';

// Weights and conversion to ONNX.
export { readWeights, detectFormat, formatIds } from './weights/formats.js';
export type { WeightSet, LayerWeights, Tensor, FormatId, ChannelOrder, ReadOptions } from './weights/types.js';
export type { Topology } from './weights/topology.js';
export { convertWeightsToOnnx, type ConversionReport, type ConvertOptions } from './onnx/convert.js';
export { readOnnxInfo, type OnnxInfo } from './onnx/inspect.js';
export {
  fetchWeights,
  WEIGHT_SOURCES,
  type WeightSource,
  type FetchOutcome,
  type OfficialWeightsOptions,
} from './weights/official.js';

// Errors: every error vggface raises on purpose, with a stable code.
export { VggFaceError, type ErrorCode } from './errors.js';
