/**
 * Builds the self-contained VGG-Face ONNX model from a canonical weight set.
 *
 * Input `image`: uint8 [batch, 224, 224, 3], RGB, as decoded (HWC). Inside the graph: cast to float, NHWC->NCHW,
 * preprocessing (`caffe`: subtract the training mean; `deepface`: scale to 0-1), then the VGG16 trunk.
 * A BGR-trained conv1_1 gets its input channels reversed here, which is exact; the mean is subtracted in the graph
 * rather than folded into conv1_1, because folding is not exact at the zero-padded border.
 * Outputs: fc6 and fc7 (after ReLU), fc7_pre (before ReLU), fc8 (logits), descriptor (fc7 / ||fc7||2).
 * No dropout: this is the inference graph.
 */
import { VERSION } from '../version.js';
import { BUILDER_VERSION, META, MODEL_INPUT, type Preprocessing } from './contract.js';
import { reverseInputChannels } from '../weights/layout.js';
import { BLOCKS, INPUT_SIZE, type Topology } from '../weights/topology.js';
import { VGG_FACE_MEAN_RGB, type LayerWeights, type Tensor, type WeightSet } from '../weights/types.js';
import {
  DataType,
  encodeModel,
  type InitializerSpec,
  type ModelSpec,
  type NodeSpec,
  type ValueInfoSpec,
} from './proto.js';
import { encodeHalf } from '../util/float16.js';
import type { ProtoMessage } from '../proto/writer.js';

export const OPSET = 17;

export interface BuildOptions {
  readonly preprocessing: Preprocessing;
  /** sha256 of the source file, recorded in the metadata. */
  readonly sourceSha256?: string;
  readonly sourceName?: string;
  /** Weight storage, fp32 (default) or fp16; int8 models are built by quantize.ts. */
  readonly precision?: 'fp32' | 'fp16';
  /** Also output every conv layer's activation (after ReLU), named like the layer: the calibration model. */
  readonly convOutputs?: boolean;
}

/** Little-endian bytes of a typed array, as a view (no copy). */
export const bytesOf = (t: ArrayBufferView): Uint8Array => new Uint8Array(t.buffer, t.byteOffset, t.byteLength);

export const IO_DOC = [
  'VGG-Face (Parkhi, Vedaldi, Zisserman, BMVC 2015), converted by vggface.',
  `Input ${MODEL_INPUT}: uint8 [batch, ${INPUT_SIZE}, ${INPUT_SIZE}, 3], RGB, ` +
    '0-255, height x width x channel (a decoded image as is).',
  'Outputs (float32): fc6 [batch, F6] after ReLU; fc7_pre [batch, F7] before ReLU; fc7 [batch, F7] after ReLU;',
  'fc8 [batch, identities] logits; descriptor [batch, F7] = fc7 / max(||fc7||2, 1e-12), the face descriptor.',
].join('\n');

/** A piece of graph: nodes in topological order and the initializers they read. */
export interface GraphPart {
  readonly nodes: NodeSpec[];
  readonly inits: InitializerSpec[];
}

const ints = (value: readonly number[]) => ({ kind: 'ints', value }) as const;
export const CONV_ATTRIBUTES = { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]), strides: ints([1, 1]) };
export const POOL_ATTRIBUTES = { kernel_shape: ints([2, 2]), strides: ints([2, 2]) };

/** uint8 NHWC `image` -> float NCHW `data`, preprocessed as `caffe` (minus mean) or `deepface` (x/255). */
export function preprocessingPart(preprocessing: Preprocessing, mean: readonly number[]): GraphPart {
  const nodes: NodeSpec[] = [];
  const inits: InitializerSpec[] = [];
  nodes.push({
    op: 'Cast',
    inputs: [MODEL_INPUT],
    outputs: ['image_f32'],
    attributes: { to: { kind: 'int', value: DataType.FLOAT } },
  });
  nodes.push({
    op: 'Transpose',
    inputs: ['image_f32'],
    outputs: ['image_nchw'],
    attributes: { perm: ints([0, 3, 1, 2]) },
  });
  if (preprocessing === 'caffe') {
    inits.push({
      name: 'mean_rgb',
      dataType: DataType.FLOAT,
      dims: [1, 3, 1, 1],
      data: bytesOf(Float32Array.from(mean)),
    });
    nodes.push({ op: 'Sub', inputs: ['image_nchw', 'mean_rgb'], outputs: ['data'] });
  } else {
    inits.push({ name: 'scale', dataType: DataType.FLOAT, dims: [], data: bytesOf(Float32Array.of(1 / 255)) });
    nodes.push({ op: 'Mul', inputs: ['image_nchw', 'scale'], outputs: ['data'] });
  }
  return { nodes, inits };
}

/** descriptor = fc7 / max(||fc7||, eps): an all-zero fc7 gives zeros, not NaN. */
export function descriptorPart(): GraphPart {
  return {
    inits: [{ name: 'l2_eps', dataType: DataType.FLOAT, dims: [], data: bytesOf(Float32Array.of(1e-12)) }],
    nodes: [
      {
        op: 'ReduceL2',
        inputs: ['fc7'],
        outputs: ['fc7_norm'],
        attributes: { axes: ints([1]), keepdims: { kind: 'int', value: 1 } },
      },
      { op: 'Max', inputs: ['fc7_norm', 'l2_eps'], outputs: ['fc7_norm_safe'] },
      { op: 'Div', inputs: ['fc7', 'fc7_norm_safe'], outputs: ['descriptor'] },
    ],
  };
}

/** The layer's weight as the graph should see it: conv1_1 of a BGR-trained model gets its input channels reversed. */
export function graphWeight(weights: WeightSet, layer: LayerWeights): Tensor {
  return layer.name === 'conv1_1' && weights.inputChannelOrder === 'BGR'
    ? reverseInputChannels(layer.weight)
    : layer.weight;
}

/** Spatial side of each block's conv activations (224, 112, 56, 28, 14). */
export function blockSide(block: number): number {
  return INPUT_SIZE >> block;
}

/** Graph input and the five outputs, plus (for calibration) every conv activation. */
export function graphInterface(
  topology: Topology,
  convOutputs = false,
): { inputs: ValueInfoSpec[]; outputs: ValueInfoSpec[] } {
  const batch = 'batch';
  const inputs: ValueInfoSpec[] = [
    {
      name: MODEL_INPUT,
      elemType: DataType.UINT8,
      shape: [batch, INPUT_SIZE, INPUT_SIZE, 3],
      doc: 'RGB image, uint8 HWC',
    },
  ];
  const outputs: ValueInfoSpec[] = [
    { name: 'fc6', elemType: DataType.FLOAT, shape: [batch, topology.fc6], doc: 'fc6 after ReLU' },
    { name: 'fc7_pre', elemType: DataType.FLOAT, shape: [batch, topology.fc7], doc: 'fc7 before ReLU' },
    { name: 'fc7', elemType: DataType.FLOAT, shape: [batch, topology.fc7], doc: 'fc7 after ReLU' },
    { name: 'fc8', elemType: DataType.FLOAT, shape: [batch, topology.fc8], doc: 'fc8 logits (identities)' },
    {
      name: 'descriptor',
      elemType: DataType.FLOAT,
      shape: [batch, topology.fc7],
      doc: 'fc7 L2-normalised: the face descriptor',
    },
  ];
  if (convOutputs) {
    let i = 0;
    BLOCKS.forEach((block, b) => {
      for (const name of block) {
        const side = blockSide(b);
        outputs.push({
          name,
          elemType: DataType.FLOAT,
          shape: [batch, topology.conv[i++], side, side],
          doc: `${name} after ReLU (calibration)`,
        });
      }
    });
  }
  return { inputs, outputs };
}

/** What the metadata records about the source weights. */
export type WeightSetInfo = Pick<
  WeightSet,
  'format' | 'layout' | 'sourceDtype' | 'inputChannelOrder' | 'mean' | 'identity'
>;

/** The metadata every converted model carries; `extra` adds or overrides keys (precision, quantization). */
export function modelMetadata(
  weights: WeightSetInfo,
  topology: Topology,
  options: BuildOptions,
  extra: Record<string, string>,
): Record<string, string> {
  const metadata: Record<string, string> = {
    [META.producer]: VERSION,
    [META.builder]: String(BUILDER_VERSION),
    [META.format]: weights.format,
    [META.layout]: weights.layout,
    [META.dtype]: weights.sourceDtype,
    [META.channelOrder]: weights.inputChannelOrder,
    [META.preprocessing]: options.preprocessing,
    [META.mean]: (weights.mean ?? VGG_FACE_MEAN_RGB).join(','),
    [META.precision]: 'fp32',
    [META.topology]: JSON.stringify({ conv: topology.conv, fc6: topology.fc6, fc7: topology.fc7, fc8: topology.fc8 }),
  };
  if (options.sourceSha256) metadata[META.sha256] = options.sourceSha256;
  if (weights.identity) metadata[META.identity] = weights.identity;
  if (options.sourceName) metadata[META.sourceName] = options.sourceName;
  return { ...metadata, ...extra };
}

/** Puts the parts into a model spec with the vggface interface. */
export function assembleSpec(
  part: GraphPart,
  io: { inputs: ValueInfoSpec[]; outputs: ValueInfoSpec[] },
  metadata: Record<string, string>,
  opset = OPSET,
): ModelSpec {
  return {
    graphName: 'vgg_face',
    producerName: 'vggface',
    producerVersion: VERSION,
    docString: IO_DOC,
    opset,
    irVersion: 8,
    nodes: part.nodes,
    initializers: part.inits,
    inputs: io.inputs,
    outputs: io.outputs,
    metadata,
  };
}

/** The graph as a spec whose initializers reference the weight set's arrays (fp32; conv1_1 excepted when reordered). */
export function buildModelSpec(weights: WeightSet, topology: Topology, options: BuildOptions): ModelSpec {
  const precision = options.precision ?? 'fp32';
  const { nodes, inits } = preprocessingPart(options.preprocessing, weights.mean ?? VGG_FACE_MEAN_RGB);
  // fp16: the initializer holds float16 and a Cast gives the float32 the ops read; ONNX Runtime folds the Cast
  // into a float32 constant when it loads the model.
  const param = (name: string, t: Tensor): string => {
    if (precision === 'fp32') {
      inits.push({ name, dataType: DataType.FLOAT, dims: t.shape, data: bytesOf(t.data) });
      return name;
    }
    inits.push({ name: `${name}_fp16`, dataType: DataType.FLOAT16, dims: t.shape, data: bytesOf(encodeHalf(t.data)) });
    nodes.push({
      op: 'Cast',
      inputs: [`${name}_fp16`],
      outputs: [name],
      attributes: { to: { kind: 'int', value: DataType.FLOAT } },
    });
    return name;
  };

  const byName = new Map<string, LayerWeights>(weights.layers.map((l) => [l.name, l]));
  let x = 'data';
  BLOCKS.forEach((block, b) => {
    for (const name of block) {
      const layer = byName.get(name)!;
      const w = param(`${name}.weight`, graphWeight(weights, layer));
      const bias = param(`${name}.bias`, layer.bias);
      nodes.push({ op: 'Conv', name, inputs: [x, w, bias], outputs: [`${name}_pre`], attributes: CONV_ATTRIBUTES });
      nodes.push({ op: 'Relu', inputs: [`${name}_pre`], outputs: [name] });
      x = name;
    }
    const pool = `pool${b + 1}`;
    nodes.push({ op: 'MaxPool', name: pool, inputs: [x], outputs: [pool], attributes: POOL_ATTRIBUTES });
    x = pool;
  });
  nodes.push({ op: 'Flatten', inputs: [x], outputs: ['pool5_flat'], attributes: { axis: { kind: 'int', value: 1 } } });

  const fc = (name: string, input: string, output: string) => {
    const layer = byName.get(name)!;
    const w = param(`${name}.weight`, layer.weight);
    const bias = param(`${name}.bias`, layer.bias);
    nodes.push({
      op: 'Gemm',
      name,
      inputs: [input, w, bias],
      outputs: [output],
      attributes: { transB: { kind: 'int', value: 1 } },
    });
  };
  fc('fc6', 'pool5_flat', 'fc6_pre');
  nodes.push({ op: 'Relu', inputs: ['fc6_pre'], outputs: ['fc6'] });
  fc('fc7', 'fc6', 'fc7_pre');
  nodes.push({ op: 'Relu', inputs: ['fc7_pre'], outputs: ['fc7'] });
  fc('fc8', 'fc7', 'fc8');
  const tail = descriptorPart();
  nodes.push(...tail.nodes);
  inits.push(...tail.inits);

  const metadata = modelMetadata(weights, topology, options, { [META.precision]: precision });
  return assembleSpec({ nodes, inits }, graphInterface(topology, options.convOutputs), metadata);
}

export function buildModel(weights: WeightSet, topology: Topology, options: BuildOptions): ProtoMessage {
  return encodeModel(buildModelSpec(weights, topology, options));
}
