/** The public API of vggface. This file only re-exports; each module documents its part. */
export { VggFace, LAYERS, l2normalize } from './vggface.js';
export type { Layer, LoadOptions, DescribeOptions, DescribeResult } from './vggface.js';
export { VggFaceError } from './errors.js';
export type { ErrorCode } from './errors.js';
export type { ImageInput, RawImage, Fit } from './image/decode.js';
export { decodeImage, loadSquare, DEFAULT_MAX_PIXELS } from './image/decode.js';
export { readWeights, detectFormat, formatIds } from './weights/formats.js';
export type { WeightSet, LayerWeights, Tensor, FormatId, ChannelOrder, ReadOptions } from './weights/types.js';
export { VGG_FACE_MEAN_RGB } from './weights/types.js';
export { validateTopology, FULL_WIDTHS } from './weights/topology.js';
export type { Topology } from './weights/topology.js';
export { convertWeightsToOnnx } from './onnx/convert.js';
export type { ConversionReport, ConvertOptions } from './onnx/convert.js';
export { MODEL_INPUT, MODEL_OUTPUTS } from './onnx/builder.js';
export type { Preprocessing, ModelOutput } from './onnx/builder.js';
export { readOnnxInfo } from './onnx/inspect.js';
export type { ModelInfo } from './runtime/model-cache.js';
export { ensureOfficialWeights, OFFICIAL_WEIGHTS_URL } from './weights/official.js';
