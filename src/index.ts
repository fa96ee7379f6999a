/** The package's public API: a thin re-export of the modules that define it. */
export { VggFace, LAYERS, l2normalize, type Layer, type LoadOptions, type DescribeOptions, type DescribeResult } from './vggface.js';
export { VggFaceError, type ErrorCode } from './errors.js';
export { FITS, type Fit, type ImageInput, type RawImage } from './image/decode.js';
export { PREPROCESSING, type Preprocessing } from './onnx/builder.js';

// Distances, thresholds, verification and evaluation.
export { distance, distanceFromSums, METRICS, DEFAULT_METRIC, type Metric } from './metrics/distance.js';
export { rocCurve, rocAuc, equalErrorRate, tarAtFar, accuracyAt, bestThreshold, type RocPoint, type ScoredPair } from './metrics/roc.js';
export { evaluatePairs, assignFolds, FARS, type EvaluationReport, type FoldResult, type FoldedPair } from './metrics/protocol.js';
export { rocSvg, writeRocPlot } from './metrics/roc-plot.js';
export { verifyDescriptors, describeDistinct, type Verification } from './verify/verify.js';
export { readPairList, checkPairImages, type ImagePair, type PairList } from './verify/pairs.js';
export { measurePairs, evaluateMetric, type PairDistances } from './verify/evaluate.js';
export {
  DEEPFACE_THRESHOLDS,
  modelIdentity,
  resolveThreshold,
  loadCalibrations,
  saveCalibrations,
  calibrationPath,
  type ModelIdentity,
  type Calibration,
  type ResolvedThreshold,
} from './verify/thresholds.js';

// Galleries.
export {
  Gallery,
  openGalleryStore,
  removeIdentity,
  defaultGalleryPath,
  type GalleryOpenOptions,
  type GallerySearchOptions,
  type GallerySearchResult,
  type AddedImage,
} from './gallery/gallery.js';
export { SqliteStore } from './gallery/sqlite-store.js';
export { PostgresStore } from './gallery/postgres-store.js';
export { DescriptorIndex, type IdentityMatch, type IndexedFace } from './gallery/descriptor-index.js';
export { PRECISIONS, type Precision } from './gallery/scorer.js';
export { UNKNOWN, type GalleryStore, type GalleryMeta, type NewFace, type AddOutcome, type IdentitySummary } from './gallery/types.js';

// Weights, conversion and the ONNX model.
export { decodeImage, loadSquare, DEFAULT_MAX_PIXELS } from './image/decode.js';
export { readWeights, detectFormat, formatIds } from './weights/formats.js';
export type { WeightSet, LayerWeights, Tensor, FormatId, ChannelOrder, ReadOptions } from './weights/types.js';
export { VGG_FACE_MEAN_RGB } from './weights/types.js';
export { validateTopology, FULL_WIDTHS } from './weights/topology.js';
export type { Topology } from './weights/topology.js';
export { convertWeightsToOnnx } from './onnx/convert.js';
export type { ConversionReport, ConvertOptions } from './onnx/convert.js';
export { MODEL_INPUT, MODEL_OUTPUTS } from './onnx/builder.js';
export type { ModelOutput } from './onnx/builder.js';
export { readOnnxInfo } from './onnx/inspect.js';
export type { ModelInfo } from './runtime/model-cache.js';
export {
  ensureOfficialWeights,
  fetchWeights,
  cachedWeights,
  resolveSource,
  WEIGHT_SOURCES,
  OFFICIAL_WEIGHTS_URL,
  type WeightSource,
  type FetchOutcome,
  type OfficialWeightsOptions,
} from './weights/official.js';
export { weightsIdentity } from './weights/identity.js';
export { envValue, readEnv, ENV_VARIABLES, type EnvVariable } from './util/env.js';

// Faces in whole photos.
export { FaceDetector } from './face/detector.js';
export type { FaceDetectorOptions, DetectOptions } from './face/detector.js';
export type { DetectedFace, Box, Landmarks, Point } from './face/types.js';
export type { PhotoFaces, AlignedFace } from './face/pipeline.js';
export type { DescribeFacesOptions, DescribeFacesResult, FaceDescription } from './vggface.js';
