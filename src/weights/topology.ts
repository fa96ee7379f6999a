/**
 * The VGG-Face topology (Parkhi et al. 2015, VGG16 configuration D): 13 conv 3x3/pad 1 + ReLU in five blocks,
 * each block closed by a 2x2/2 max-pool, then fc6, fc7 (each + ReLU) and fc8.
 * Widths are read from the weights, so a narrow copy of the same topology validates too.
 */
import { VggFaceError } from '../errors.js';
import {
  CONV_LAYER_NAMES,
  FC_LAYER_NAMES,
  LAYER_NAMES,
  type LayerName,
  type LayerWeights,
  type WeightSet,
} from './types.js';

/** The input side the network was trained for; pool5 is then 7x7. */
export const INPUT_SIZE = 224;
export const POOL5_SIZE = INPUT_SIZE / 32;
/** conv layers per block; a max-pool follows each block. */
export const BLOCKS: readonly (readonly LayerName[])[] = [
  ['conv1_1', 'conv1_2'],
  ['conv2_1', 'conv2_2'],
  ['conv3_1', 'conv3_2', 'conv3_3'],
  ['conv4_1', 'conv4_2', 'conv4_3'],
  ['conv5_1', 'conv5_2', 'conv5_3'],
];

/** The widths of the published model. */
export const FULL_WIDTHS = {
  conv: [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512],
  fc6: 4096,
  fc7: 4096,
  fc8: 2622,
} as const;

export interface Topology {
  /** Output channels of each conv layer, in order. */
  readonly conv: readonly number[];
  readonly fc6: number;
  readonly fc7: number;
  /** Number of identities fc8 scores (2622 in the published model). */
  readonly fc8: number;
  /** Total number of parameters. */
  readonly parameters: number;
}

function topologyError(layer: string, message: string): VggFaceError {
  return new VggFaceError('E_TOPOLOGY', `${layer}: ${message}`, { input: layer });
}

function shapeText(shape: readonly number[]): string {
  return shape.join('x');
}

/**
 * Checks a weight set against the VGG-Face topology and returns its widths.
 * Messages name the layer and both shapes, e.g. "fc6 expects 25088 inputs = 512x7x7 from pool5, file has 4096".
 */
export function validateTopology(weights: Pick<WeightSet, 'layers'>, source = 'weights'): Topology {
  const layers = weights.layers;
  if (layers.length !== LAYER_NAMES.length) {
    const found = layers.map((l) => l.sourceName).join(', ') || 'none';
    throw new VggFaceError(
      'E_TOPOLOGY',
      `${source}: VGG-Face has ${CONV_LAYER_NAMES.length} conv and ${FC_LAYER_NAMES.length} ` +
        `fc layers with weights (16), file has ${layers.length} (${found})`,
      { input: source },
    );
  }
  const conv: number[] = [];
  let inChannels = 3;
  let parameters = 0;
  for (let i = 0; i < LAYER_NAMES.length; i++) {
    const layer = layers[i];
    const expected = LAYER_NAMES[i];
    if (layer.name !== expected)
      throw topologyError(layer.sourceName, `expected layer ${expected} at position ${i + 1}, found ${layer.name}`);
    checkTensorSizes(layer);
    const w = layer.weight.shape;
    if (layer.kind === 'conv') {
      if (w.length !== 4)
        throw topologyError(layer.name, `conv weight must have 4 dimensions (out, in, 3, 3), file has ${shapeText(w)}`);
      if (w[2] !== 3 || w[3] !== 3) throw topologyError(layer.name, `expects a 3x3 kernel, file has ${w[2]}x${w[3]}`);
      if (w[1] !== inChannels) {
        const from = i === 0 ? 'the RGB image' : LAYER_NAMES[i - 1];
        throw topologyError(
          layer.name,
          `expects ${inChannels} input channels from ${from}, file has ${w[1]} (weight ${shapeText(w)})`,
        );
      }
      inChannels = w[0];
      conv.push(w[0]);
    } else {
      if (w.length !== 2)
        throw topologyError(layer.name, `fc weight must have 2 dimensions (out, in), file has ${shapeText(w)}`);
      const expectedIn = layer.name === 'fc6' ? inChannels * POOL5_SIZE * POOL5_SIZE : layers[i - 1].weight.shape[0];
      if (w[1] !== expectedIn) {
        const detail =
          layer.name === 'fc6'
            ? `${expectedIn} inputs = ${inChannels}x${POOL5_SIZE}x${POOL5_SIZE} from pool5`
            : `${expectedIn} inputs from ${LAYER_NAMES[i - 1]}`;
        throw topologyError(layer.name, `expects ${detail}, file has ${w[1]}`);
      }
    }
    if (layer.bias.shape.length !== 1 || layer.bias.shape[0] !== w[0]) {
      throw topologyError(
        layer.name,
        `bias must have ${w[0]} values (one per output), file has ${shapeText(layer.bias.shape)}`,
      );
    }
    parameters += layer.weight.data.length + layer.bias.data.length;
  }
  const fcOut = (name: string) => layers[LAYER_NAMES.indexOf(name as never)].weight.shape[0];
  return { conv, fc6: fcOut('fc6'), fc7: fcOut('fc7'), fc8: fcOut('fc8'), parameters };
}

/**
 * NaN or infinite weights mean a corrupt file (a flipped bit inside a float is otherwise invisible).
 * One pass over all weights (about 0.1 s for the full model), done once per read by `readWeights`.
 */
export function assertFiniteWeights(weights: Pick<WeightSet, 'layers'>, source: string): void {
  for (const layer of weights.layers) {
    for (const [what, t] of [
      ['weight', layer.weight],
      ['bias', layer.bias],
    ] as const) {
      let bad = 0;
      const d = t.data;
      for (let i = 0; i < d.length; i++) if (d[i] - d[i] !== 0) bad++; // false only for NaN and +-Infinity
      if (bad > 0) {
        throw new VggFaceError(
          'E_FORMAT',
          `${source}: ${layer.name} ${what} has ${bad} non-finite values (NaN or infinity): the file is corrupt`,
          { input: source },
        );
      }
    }
  }
}

function checkTensorSizes(layer: LayerWeights): void {
  for (const [what, t] of [
    ['weight', layer.weight],
    ['bias', layer.bias],
  ] as const) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) {
      throw topologyError(
        layer.name,
        `${what} shape ${shapeText(t.shape)} needs ${n} values, file has ${t.data.length}`,
      );
    }
  }
}

/** True when the widths are those of the published VGG-Face model. */
export function isFullSize(t: Topology): boolean {
  return (
    t.conv.every((c, i) => c === FULL_WIDTHS.conv[i]) &&
    t.fc6 === FULL_WIDTHS.fc6 &&
    t.fc7 === FULL_WIDTHS.fc7 &&
    t.fc8 === FULL_WIDTHS.fc8
  );
}
