/**
 * Builds the canonical weight set from the weight-bearing layers a reader found, matched to VGG-Face
 * layer names by order (13 conv, then 3 fc), as deepface's Keras file requires: its layer names vary.
 */
import { VggFaceError } from '../errors.js';
import { LAYER_NAMES, CONV_LAYER_NAMES, type LayerWeights, type Tensor, type WeightSet } from './types.js';
import { validateTopology, type Topology } from './topology.js';

export interface FoundLayer {
  readonly sourceName: string;
  readonly kind: 'conv' | 'fc';
  /** Already in canonical layout: conv (out, in, kh, kw), fc (out, in) with fc6 inputs in C,H,W order. */
  readonly weight: Tensor;
  readonly bias: Tensor;
}

export type WeightSetInfo = Omit<WeightSet, 'layers'>;

/** Names the found layers conv1_1..fc8 by order, checks the topology and returns the weight set with its widths. */
export function assembleWeightSet(
  info: WeightSetInfo,
  found: readonly FoundLayer[],
  source: string,
): { weights: WeightSet; topology: Topology } {
  const convCount = found.filter((l) => l.kind === 'conv').length;
  const fcCount = found.length - convCount;
  const summary = () =>
    found.map((l) => `${l.sourceName} (${l.kind} ${l.weight.shape.join('x')})`).join(', ') || 'none';
  if (found.length !== LAYER_NAMES.length || convCount !== CONV_LAYER_NAMES.length) {
    throw new VggFaceError(
      'E_TOPOLOGY',
      `${source}: VGG-Face has 13 conv layers then 3 fc layers with weights, file ` +
        `has ${convCount} conv and ${fcCount} fc: ${summary()}`,
      { input: source },
    );
  }
  const layers: LayerWeights[] = found.map((l, i) => {
    const expectedKind = i < CONV_LAYER_NAMES.length ? 'conv' : 'fc';
    if (l.kind !== expectedKind) {
      throw new VggFaceError(
        'E_TOPOLOGY',
        `${source}: layer ${i + 1} (${l.sourceName}) should ` +
          `be ${expectedKind === 'conv' ? 'a conv layer' : 'an fc layer'} (${LAYER_NAMES[i]}), file has ${l.kind}`,
        { input: source },
      );
    }
    return { name: LAYER_NAMES[i], kind: l.kind, weight: l.weight, bias: l.bias, sourceName: l.sourceName };
  });
  const weights: WeightSet = { ...info, layers };
  const topology = validateTopology(weights, source);
  return { weights, topology };
}
