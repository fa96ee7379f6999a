/**
 * HDF5 kernels in the Keras convention -> canonical layers, shared by the Keras and the article's HDF5 readers.
 * conv kernels are (kh, kw, in, out); fc kernels are stored transposed, as a Dense (in, out) or as a Conv2D
 * (kh, kw, in, out), and fc6's inputs are H,W,C (channels-last Flatten, or a 7x7 conv) or C,H,W (the article).
 */
import { VggFaceError } from '../errors.js';
import { assembleWeightSet, type FoundLayer } from './canonical.js';
import { Hdf5File, type Hdf5Dataset } from './hdf5.js';
import { hwioToOihw, tensor, transposeRowsInto } from './layout.js';
import { POOL5_SIZE } from './topology.js';
import { CONV_LAYER_NAMES, type FormatId, type Tensor, type WeightSet } from './types.js';

/** One weight-bearing layer as stored: the canonical name it will get, the source name, and its two datasets. */
export interface StoredLayer {
  /** Canonical name by position (conv1_1 .. fc8), for messages. */
  readonly canonical: string;
  readonly sourceName: string;
  readonly kernel: Hdf5Dataset;
  readonly bias: Hdf5Dataset;
}

/** How fc6 reads pool5 in the file. */
export type Fc6InputOrder = 'HWC' | 'CHW';

function shapeText(shape: readonly number[]): string {
  return shape.join('x');
}

function topologyError(file: Hdf5File, layer: StoredLayer, problem: string): VggFaceError {
  return new VggFaceError('E_TOPOLOGY', `${file.path}: ${layer.canonical} (${layer.sourceName}): ${problem}`, {
    input: file.path,
  });
}

function readBias(file: Hdf5File, layer: StoredLayer): Tensor {
  if (layer.bias.shape.length !== 1) {
    throw topologyError(file, layer, `bias ${layer.bias.path} must be 1-D, file has ${shapeText(layer.bias.shape)}`);
  }
  return tensor(layer.bias.shape, file.readAll(layer.bias));
}

/** A conv layer: (kh, kw, in, out) -> (out, in, kh, kw). */
function readConvLayer(file: Hdf5File, layer: StoredLayer): FoundLayer {
  const k = layer.kernel.shape;
  if (k.length !== 4)
    throw topologyError(
      file,
      layer,
      `conv kernel ${layer.kernel.path} must be 4-D (kh, kw, in, out), file has ${shapeText(k)}`,
    );
  const [kh, kw, cin, cout] = k;
  return {
    sourceName: layer.sourceName,
    kind: 'conv',
    weight: hwioToOihw(file.readAll(layer.kernel), kh, kw, cin, cout),
    bias: readBias(file, layer),
  };
}

/**
 * An fc layer stored transposed -> canonical (out, in), streamed through small blocks. `pool5Channels` is set for
 * fc6 (the width of conv5_3): its kernel must read exactly 7x7 of those, and H,W,C inputs are re-ordered to C,H,W.
 */
function readFcLayer(
  file: Hdf5File,
  layer: StoredLayer,
  fc6?: { pool5Channels: number; inputOrder: Fc6InputOrder },
): FoundLayer {
  const k = layer.kernel.shape;
  let inputs: number;
  let out: number;
  if (k.length === 2) {
    [inputs, out] = k;
  } else if (k.length === 4) {
    const [kh, kw, cin, cout] = k;
    const want = fc6 ? POOL5_SIZE : 1;
    if (kh !== want || kw !== want) {
      const expected = fc6
        ? `a ${POOL5_SIZE}x${POOL5_SIZE}x${fc6.pool5Channels}xN conv over pool5`
        : 'a 1x1xINxOUT conv';
      throw topologyError(
        file,
        layer,
        `fc layer stored as a conv must be ${expected}, file has kernel ${shapeText(k)}`,
      );
    }
    inputs = kh * kw * cin;
    out = cout;
  } else {
    throw topologyError(
      file,
      layer,
      `fc kernel ${layer.kernel.path} must be (in, out) or (kh, kw, in, out), file has ${shapeText(k)}`,
    );
  }
  let hwc: { c: number; h: number; w: number } | undefined;
  if (fc6) {
    const c = fc6.pool5Channels;
    const expected = c * POOL5_SIZE * POOL5_SIZE;
    if (inputs !== expected) {
      throw topologyError(
        file,
        layer,
        `expects ${expected} inputs = ${c}x${POOL5_SIZE}x${POOL5_SIZE} from pool5 (conv5_3 ` +
          `has ${c} channels), file has ${inputs} (kernel ${shapeText(k)})`,
      );
    }
    // A kernel stored as a conv reads its input channels-last whatever the layout says.
    if (fc6.inputOrder === 'HWC' || k.length === 4) hwc = { c, h: POOL5_SIZE, w: POOL5_SIZE };
  }
  const weight = new Float32Array(out * inputs);
  file.readRows(layer.kernel, (rows, firstRow, rowCount) =>
    transposeRowsInto(weight, rows, firstRow, rowCount, out, hwc),
  );
  return {
    sourceName: layer.sourceName,
    kind: 'fc',
    weight: tensor([out, inputs], weight),
    bias: readBias(file, layer),
  };
}

/** The dtypes of the layers' datasets, as WeightSet.sourceDtype. */
function storedDtype(layers: readonly StoredLayer[]): string {
  return [...new Set(layers.flatMap((l) => [l.kernel.dtype, l.bias.dtype]))].join('+');
}

/** What tells one HDF5 layout from another: where its layers are, and how its fc6 reads pool5. */
export interface Hdf5Layout {
  readonly format: FormatId;
  /** The weight-bearing layers, conv1_1..fc8 in order (or an error saying what is missing). */
  readonly storedLayers: (file: Hdf5File) => StoredLayer[];
  readonly fc6InputOrder: Fc6InputOrder;
  /** WeightSet.layout, which may say how the layers are stored. */
  readonly describe: (stored: readonly StoredLayer[]) => string;
}

/**
 * The weight set of an HDF5 file in `layout`: conv1_1..conv5_3, then fc6..fc8 with fc6 reading pool5 (as wide as
 * conv5_3). BGR: every HDF5 layout comes from the Caffe model.
 */
export async function readHdf5Weights(path: string, layout: Hdf5Layout): Promise<WeightSet> {
  const file = await Hdf5File.open(path);
  try {
    const stored = layout.storedLayers(file);
    const found = stored.slice(0, CONV_LAYER_NAMES.length).map((l) => readConvLayer(file, l));
    const pool5Channels = found[found.length - 1].weight.shape[0];
    const [fc6, fc7, fc8] = stored.slice(CONV_LAYER_NAMES.length);
    found.push(
      readFcLayer(file, fc6, { pool5Channels, inputOrder: layout.fc6InputOrder }),
      readFcLayer(file, fc7),
      readFcLayer(file, fc8),
    );
    return assembleWeightSet(
      {
        format: layout.format,
        layout: layout.describe(stored),
        sourceDtype: storedDtype(stored),
        inputChannelOrder: 'BGR',
      },
      found,
      path,
    ).weights;
  } finally {
    file.close();
  }
}
