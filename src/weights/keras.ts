/**
 * Keras HDF5 readers:
 * - `keras-deepface`: the `save_weights` layout of deepface's `vgg_face_weights.h5`: root attribute `layer_names`,
 *   one group per layer (padding/pool/dropout groups have no weights), datasets named by each group's
 *   `weight_names`; its layer names vary (`conv2d_1`..), so weight-bearing layers are matched by order, and its
 *   fc layers are Conv2D (7x7x512x4096, 1x1x4096x4096, 1x1x4096x2622).
 * - `keras-vggface`: the full-model layout of keras-vggface's `rcmalli_vggface_tf_vgg16.h5`: the same under
 *   `model_weights/`, layers `conv1_1`..`fc8` (a `/` in a name nests groups), fc layers Dense (in, out) over a
 *   channels-last Flatten.
 * Either container may hold either kind of fc layer; both end up canonical with fc6 reading C,H,W. BGR.
 */
import { formatError, VggFaceError } from '../errors.js';
import { describeTopLevel, type Hdf5File, probeHdf5, sniffHdf5 } from './hdf5.js';
import { readHdf5Weights, type StoredLayer } from './hdf5-layers.js';
import {
  CONV_LAYER_NAMES,
  FC_LAYER_NAMES,
  LAYER_NAMES,
  type FormatId,
  type WeightReader,
  type WeightSet,
} from './types.js';

/** Where the layers live: the root (`save_weights`) or `model_weights/` (`model.save`). */
type KerasContainer = 'weights' | 'model';

const CONTAINERS: Record<KerasContainer, { id: FormatId; group: string; name: string }> = {
  weights: { id: 'keras-deepface', group: '/', name: 'Keras save_weights layout (root layer_names)' },
  model: { id: 'keras-vggface', group: '/model_weights', name: 'Keras full-model layout (model_weights/)' },
};

function matchKeras(file: Hdf5File, container: KerasContainer): true | string {
  const { group } = CONTAINERS[container];
  if (container === 'model' && file.kind(group) !== 'group')
    return `no group model_weights (${describeTopLevel(file)})`;
  if (!file.attributeNames(group).includes('layer_names')) {
    return container === 'model'
      ? 'group model_weights has no attribute layer_names'
      : `no root attribute layer_names (${describeTopLevel(file)})`;
  }
  return true;
}

function join(group: string, name: string): string {
  return group === '/' ? `/${name}` : `${group}/${name}`;
}

/** The layers with weights, in `layer_names` order, each with its kernel and bias datasets. */
function storedLayers(file: Hdf5File, container: KerasContainer): StoredLayer[] {
  const { group } = CONTAINERS[container];
  const layerNames = file.stringsAttribute(group, 'layer_names');
  if (!layerNames) {
    throw formatError(
      file.path,
      container === 'model'
        ? 'no attribute layer_names on model_weights: not a Keras full-model file'
        : 'no root attribute layer_names: not a Keras save_weights file',
    );
  }
  const found: { sourceName: string; kernelPath: string; biasPath: string }[] = [];
  for (const name of layerNames) {
    const g = join(group, name);
    if (file.kind(g) !== 'group') throw formatError(file.path, `layer_names lists ${name}, but there is no group ${g}`);
    const weightNames = file.stringsAttribute(g, 'weight_names');
    if (weightNames === undefined) throw formatError(file.path, `layer group ${g} has no weight_names attribute`);
    if (weightNames.length === 0) continue; // padding, pooling, dropout, flatten, activation
    if (weightNames.length !== 2) {
      throw new VggFaceError(
        'E_TOPOLOGY',
        `${file.path}: layer ${name} has ${weightNames.length} weights ` +
          `(${weightNames.join(', ')}); VGG-Face layers have a kernel and a bias`,
        { input: file.path },
      );
    }
    const pick = (kind: string, fallback: number) =>
      weightNames.find((w) => new RegExp(`(^|/)${kind}(:\\d+)?$`).test(w)) ?? weightNames[fallback];
    const kernelPath = join(g, pick('kernel', 0));
    const biasPath = join(g, pick('bias', 1));
    for (const p of [kernelPath, biasPath]) {
      if (file.kind(p) !== 'dataset')
        throw formatError(
          file.path,
          `weight_names of ${g} lists ${p.slice(g.length + 1)}, but there is no dataset ${p}`,
        );
    }
    found.push({ sourceName: name, kernelPath, biasPath });
  }
  if (found.length !== LAYER_NAMES.length) {
    const list =
      found.map((l) => `${l.sourceName} (kernel ${file.dataset(l.kernelPath).shape.join('x')})`).join(', ') || 'none';
    throw new VggFaceError(
      'E_TOPOLOGY',
      `${file.path}: VGG-Face has ${CONV_LAYER_NAMES.length} conv layers then ${FC_LAYER_NAMES.length} fc ` +
        `layers with weights, file has ${found.length} layers with weights: ${list}`,
      { input: file.path },
    );
  }
  return found.map((l, i) => ({
    canonical: LAYER_NAMES[i],
    sourceName: l.sourceName,
    kernel: file.dataset(l.kernelPath),
    bias: file.dataset(l.biasPath),
  }));
}

function readKeras(path: string, container: KerasContainer): Promise<WeightSet> {
  const { id, name } = CONTAINERS[container];
  return readHdf5Weights(path, {
    format: id,
    storedLayers: (file) => storedLayers(file, container),
    fc6InputOrder: 'HWC',
    describe: (stored) => {
      const fcKind =
        stored[CONV_LAYER_NAMES.length].kernel.shape.length === 4
          ? 'fc layers stored as Conv2D'
          : 'fc layers Dense over a channels-last Flatten';
      return `${name}, kernels (kh, kw, in, out), ${fcKind}`;
    },
  });
}

function kerasReader(container: KerasContainer, description: string): WeightReader {
  return {
    id: CONTAINERS[container].id,
    description,
    sniff: (head) => sniffHdf5(head),
    matchStructure: (path) => probeHdf5(path, (file) => matchKeras(file, container)),
    read: (path) => readKeras(path, container),
  };
}

export const kerasDeepfaceReader = kerasReader(
  'weights',
  'Keras HDF5 save_weights layout (deepface vgg_face_weights.h5)',
);
export const kerasVggfaceReader = kerasReader(
  'model',
  'Keras HDF5 full model under model_weights/ (keras-vggface rcmalli_vggface_tf_vgg16.h5)',
);
