/**
 * `vggface/browser`: VGG-Face descriptors in the page, on onnxruntime-web (WebGPU where the browser has it,
 * WebAssembly with SIMD and threads otherwise), in a Web Worker. The same names, options, results and errors as
 * the Node library; the geometry (detection decoding, NMS, alignment) is the same code.
 */
export {
  VggFace,
  extractFaces,
  type LoadOptions,
  type DescribeFacesOptions,
  type DescribePhotosOptions,
  type DescribeResult,
  type DescribeFacesResult,
  type DescribePhotoResult,
  type FaceDescription,
} from './vggface.js';
export { FaceDetector, YUNET_FILE, type FaceDetectorOptions, type RuntimeLoadOptions } from './detector.js';
export { decodeImage, loadSquare, inputLabel, type BrowserImageInput } from './image.js';
export { readOnnxInterface, modelInfo, MODEL_INPUT, MODEL_OUTPUTS, type ModelOutput } from './model-info.js';
export type { ModelSource } from './model.js';
export { BACKENDS, type Backend } from './session.js';
export { VggFaceError, type ErrorCode } from '../errors.js';
export { LAYERS, l2normalize, type Layer, type DescribeOptions } from '../describe-options.js';
export { distance, cosineSimilarity, METRICS, DEFAULT_METRIC, type Metric } from '../distance/distance.js';
export { resolveDetectOptions, type DetectOptions } from '../face/detection.js';
export { resolveAlignOptions, ALIGN_MODES, type AlignMode, type AlignOptions } from '../face/align-transform.js';
export type { DetectedFace, Box, Landmarks, Point } from '../face/types.js';
export type { Fit } from '../image/decode.js';
export type { RawImage } from '../image/types.js';
export type { ModelInfo } from '../onnx/contract.js';
