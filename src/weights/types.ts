/**
 * The canonical weight set: what every format reader produces and the only thing the ONNX builder reads.
 *
 * Conventions (whatever the source file used):
 * - conv weights are OIHW: (out, in, 3, 3);
 * - fc weights are (out, in), and fc6's inputs are read in C,H,W order (PyTorch/Caffe flatten of pool5);
 * - `inputChannelOrder` declares which channel order conv1_1's input channels expect;
 * - tensors are float32 views, ideally over the bytes read from the file (no copy), copied only where the
 *   source layout or dtype makes a copy unavoidable.
 */

/** Identifies a weight layout. One reader per id. */
export type FormatId =
  | 'caffe'
  | 'torch7'
  | 'matconvnet'
  | 'keras-deepface'
  | 'keras-vggface'
  | 'hdf5-article'
  | 'pytorch'
  | 'safetensors'
  | 'onnx';

export type ChannelOrder = 'RGB' | 'BGR';

export const CONV_LAYER_NAMES = [
  'conv1_1',
  'conv1_2',
  'conv2_1',
  'conv2_2',
  'conv3_1',
  'conv3_2',
  'conv3_3',
  'conv4_1',
  'conv4_2',
  'conv4_3',
  'conv5_1',
  'conv5_2',
  'conv5_3',
] as const;
export const FC_LAYER_NAMES = ['fc6', 'fc7', 'fc8'] as const;
export const LAYER_NAMES = [...CONV_LAYER_NAMES, ...FC_LAYER_NAMES] as const;
export type LayerName = (typeof LAYER_NAMES)[number];

/** A dense float32 tensor in row-major (C) order. */
export interface Tensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface LayerWeights {
  readonly name: LayerName;
  readonly kind: 'conv' | 'fc';
  /** conv: (out, in, kh, kw); fc: (out, in). */
  readonly weight: Tensor;
  /** (out). */
  readonly bias: Tensor;
  /** The layer's name in the source file, for messages. */
  readonly sourceName: string;
}

export interface WeightSet {
  readonly format: FormatId;
  /** Human-readable description of the layout, e.g. "Caffe NetParameter V1 (layers, enum types)". */
  readonly layout: string;
  /** The dtype the file stored, before conversion to float32. */
  readonly sourceDtype: string;
  readonly inputChannelOrder: ChannelOrder;
  /**
   * Per-channel mean in R, G, B order, when the file records one (MatConvNet); otherwise the published mean is used.
   */
  readonly mean?: readonly [number, number, number];
  /** The 16 weight-bearing layers, in network order. */
  readonly layers: readonly LayerWeights[];
  /** The network's identity (weights/identity.ts), set by `readWeights` once the weights are read and checked. */
  readonly identity?: string;
}

/** The mean VGG-Face was trained with, in R, G, B order. */
export const VGG_FACE_MEAN_RGB: readonly [number, number, number] = [129.1863, 104.7624, 93.594];

/** Options every reader accepts. */
export interface ReadOptions {
  /**
   * Torch7 only: the byte width of `long` in the file (8 on 64-bit Linux builds, 4 on Windows builds). Detected when
   * omitted.
   */
  longSize?: 4 | 8;
}

/** A format reader: recognises its files by content and turns them into a canonical weight set. */
export interface WeightReader {
  readonly id: FormatId;
  readonly description: string;
  /**
   * Says whether `head` (the first bytes of the file, up to 64 KiB) belongs to this format.
   * Must be cheap and must not throw.
   */
  sniff(head: Uint8Array, fileSize: number): boolean;
  /**
   * For layouts that share a container signature (the three HDF5 layouts, zip): opens the file and checks its
   * structure. Called only after `sniff` matched. Resolves to true when the file is this layout, otherwise to a
   * short description of what the file holds instead (for the "no layout matches" message). Must not throw.
   */
  matchStructure?(path: string): Promise<true | string>;
  read(path: string, options: ReadOptions): Promise<WeightSet>;
}
