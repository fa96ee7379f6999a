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
import { reverseInputChannels } from '../weights/layout.js';
import { BLOCKS, INPUT_SIZE, type Topology } from '../weights/topology.js';
import { VGG_FACE_MEAN_RGB, type LayerWeights, type Tensor, type WeightSet } from '../weights/types.js';
import { DataType, encodeModel, type InitializerSpec, type ModelSpec, type NodeSpec, type ValueInfoSpec } from './proto.js';
import type { ProtoMessage } from '../proto/writer.js';

export type Preprocessing = 'caffe' | 'deepface';
export const PREPROCESSING: readonly Preprocessing[] = ['caffe', 'deepface'];

export const MODEL_INPUT = 'image';
export const MODEL_OUTPUTS = ['fc6', 'fc7_pre', 'fc7', 'fc8', 'descriptor'] as const;
export type ModelOutput = (typeof MODEL_OUTPUTS)[number];

/** Bumped whenever the graph changes, so cached conversions from older builders are not reused. */
export const BUILDER_VERSION = 1;
export const OPSET = 17;

export interface BuildOptions {
  readonly preprocessing: Preprocessing;
  /** sha256 of the source file, recorded in the metadata. */
  readonly sourceSha256?: string;
  readonly sourceName?: string;
}

/** Metadata keys the builder writes (and `inspect` shows). */
export const META = {
  producer: 'vggface.producer_version',
  builder: 'vggface.builder_version',
  format: 'vggface.source.format',
  layout: 'vggface.source.layout',
  dtype: 'vggface.source.dtype',
  channelOrder: 'vggface.source.channel_order',
  sha256: 'vggface.source.sha256',
  sourceName: 'vggface.source.name',
  preprocessing: 'vggface.preprocessing',
  mean: 'vggface.mean_rgb',
  precision: 'vggface.precision',
  topology: 'vggface.topology',
} as const;

const f32 = (t: Float32Array): Uint8Array => new Uint8Array(t.buffer, t.byteOffset, t.byteLength);

function initializer(name: string, t: Tensor): InitializerSpec {
  return { name, dataType: DataType.FLOAT, dims: t.shape, data: f32(t.data) };
}


export const IO_DOC = [
  'VGG-Face (Parkhi, Vedaldi, Zisserman, BMVC 2015), converted by vggface.',
  `Input ${MODEL_INPUT}: uint8 [batch, ${INPUT_SIZE}, ${INPUT_SIZE}, 3], RGB, 0-255, height x width x channel (a decoded image as is).`,
  'Outputs (float32): fc6 [batch, F6] after ReLU; fc7_pre [batch, F7] before ReLU; fc7 [batch, F7] after ReLU;',
  'fc8 [batch, identities] logits; descriptor [batch, F7] = fc7 / max(||fc7||2, 1e-12), the face descriptor.',
].join('\n');

/** The graph as a spec whose initializers reference the weight set's arrays (conv1_1 excepted when reordered). */
export function buildModelSpec(weights: WeightSet, topology: Topology, options: BuildOptions): ModelSpec {
  const nodes: NodeSpec[] = [];
  const inits: InitializerSpec[] = [];
  const mean = weights.mean ?? VGG_FACE_MEAN_RGB;

  nodes.push({ op: 'Cast', inputs: [MODEL_INPUT], outputs: ['image_f32'], attributes: { to: { kind: 'int', value: DataType.FLOAT } } });
  nodes.push({ op: 'Transpose', inputs: ['image_f32'], outputs: ['image_nchw'], attributes: { perm: { kind: 'ints', value: [0, 3, 1, 2] } } });
  if (options.preprocessing === 'caffe') {
    inits.push({ name: 'mean_rgb', dataType: DataType.FLOAT, dims: [1, 3, 1, 1], data: f32(Float32Array.from(mean)) });
    nodes.push({ op: 'Sub', inputs: ['image_nchw', 'mean_rgb'], outputs: ['data'] });
  } else {
    inits.push({ name: 'scale', dataType: DataType.FLOAT, dims: [], data: f32(Float32Array.of(1 / 255)) });
    nodes.push({ op: 'Mul', inputs: ['image_nchw', 'scale'], outputs: ['data'] });
  }

  const byName = new Map<string, LayerWeights>(weights.layers.map((l) => [l.name, l]));
  let x = 'data';
  for (let b = 0; b < BLOCKS.length; b++) {
    for (const name of BLOCKS[b]) {
      const layer = byName.get(name)!;
      const w = name === 'conv1_1' && weights.inputChannelOrder === 'BGR' ? reverseInputChannels(layer.weight) : layer.weight;
      inits.push(initializer(`${name}.weight`, w), initializer(`${name}.bias`, layer.bias));
      nodes.push({
        op: 'Conv',
        name,
        inputs: [x, `${name}.weight`, `${name}.bias`],
        outputs: [`${name}_pre`],
        attributes: { kernel_shape: { kind: 'ints', value: [3, 3] }, pads: { kind: 'ints', value: [1, 1, 1, 1] }, strides: { kind: 'ints', value: [1, 1] } },
      });
      nodes.push({ op: 'Relu', inputs: [`${name}_pre`], outputs: [name] });
      x = name;
    }
    const pool = `pool${b + 1}`;
    nodes.push({
      op: 'MaxPool',
      name: pool,
      inputs: [x],
      outputs: [pool],
      attributes: { kernel_shape: { kind: 'ints', value: [2, 2] }, strides: { kind: 'ints', value: [2, 2] } },
    });
    x = pool;
  }
  nodes.push({ op: 'Flatten', inputs: [x], outputs: ['pool5_flat'], attributes: { axis: { kind: 'int', value: 1 } } });

  const fc = (name: string, input: string, output: string) => {
    const layer = byName.get(name)!;
    inits.push(initializer(`${name}.weight`, layer.weight), initializer(`${name}.bias`, layer.bias));
    nodes.push({ op: 'Gemm', name, inputs: [input, `${name}.weight`, `${name}.bias`], outputs: [output], attributes: { transB: { kind: 'int', value: 1 } } });
  };
  fc('fc6', 'pool5_flat', 'fc6_pre');
  nodes.push({ op: 'Relu', inputs: ['fc6_pre'], outputs: ['fc6'] });
  fc('fc7', 'fc6', 'fc7_pre');
  nodes.push({ op: 'Relu', inputs: ['fc7_pre'], outputs: ['fc7'] });
  fc('fc8', 'fc7', 'fc8');
  // descriptor = fc7 / max(||fc7||, eps): an all-zero fc7 gives zeros, not NaN.
  inits.push({ name: 'l2_eps', dataType: DataType.FLOAT, dims: [], data: f32(Float32Array.of(1e-12)) });
  nodes.push({ op: 'ReduceL2', inputs: ['fc7'], outputs: ['fc7_norm'], attributes: { axes: { kind: 'ints', value: [1] }, keepdims: { kind: 'int', value: 1 } } });
  nodes.push({ op: 'Max', inputs: ['fc7_norm', 'l2_eps'], outputs: ['fc7_norm_safe'] });
  nodes.push({ op: 'Div', inputs: ['fc7', 'fc7_norm_safe'], outputs: ['descriptor'] });

  const batch = 'batch';
  const inputs: ValueInfoSpec[] = [
    { name: MODEL_INPUT, elemType: DataType.UINT8, shape: [batch, INPUT_SIZE, INPUT_SIZE, 3], doc: 'RGB image, uint8 HWC' },
  ];
  const outputs: ValueInfoSpec[] = [
    { name: 'fc6', elemType: DataType.FLOAT, shape: [batch, topology.fc6], doc: 'fc6 after ReLU' },
    { name: 'fc7_pre', elemType: DataType.FLOAT, shape: [batch, topology.fc7], doc: 'fc7 before ReLU' },
    { name: 'fc7', elemType: DataType.FLOAT, shape: [batch, topology.fc7], doc: 'fc7 after ReLU' },
    { name: 'fc8', elemType: DataType.FLOAT, shape: [batch, topology.fc8], doc: 'fc8 logits (identities)' },
    { name: 'descriptor', elemType: DataType.FLOAT, shape: [batch, topology.fc7], doc: 'fc7 L2-normalised: the face descriptor' },
  ];

  const metadata: Record<string, string> = {
    [META.producer]: VERSION,
    [META.builder]: String(BUILDER_VERSION),
    [META.format]: weights.format,
    [META.layout]: weights.layout,
    [META.dtype]: weights.sourceDtype,
    [META.channelOrder]: weights.inputChannelOrder,
    [META.preprocessing]: options.preprocessing,
    [META.mean]: mean.join(','),
    [META.precision]: 'fp32',
    [META.topology]: JSON.stringify({ conv: topology.conv, fc6: topology.fc6, fc7: topology.fc7, fc8: topology.fc8 }),
  };
  if (options.sourceSha256) metadata[META.sha256] = options.sourceSha256;
  if (options.sourceName) metadata[META.sourceName] = options.sourceName;

  return {
    graphName: 'vgg_face',
    producerName: 'vggface',
    producerVersion: VERSION,
    docString: IO_DOC,
    opset: OPSET,
    irVersion: 8,
    nodes,
    initializers: inits,
    inputs,
    outputs,
    metadata,
  };
}

export function buildModel(weights: WeightSet, topology: Topology, options: BuildOptions): ProtoMessage {
  return encodeModel(buildModelSpec(weights, topology, options));
}
