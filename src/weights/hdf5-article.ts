/**
 * The article's HDF5 layout (`vgg_face.h5`): group `data` with datasets `<layer>_w` and `<layer>_b` for conv1_1..fc8;
 * conv kernels (kh, kw, in, out), fc kernels (in, out) with fc6 reading pool5 in C,H,W order. BGR.
 */
import { VggFaceError } from '../errors.js';
import { describeTopLevel, type Hdf5File, probeHdf5, sniffHdf5 } from './hdf5.js';
import { readHdf5Weights, type StoredLayer } from './hdf5-layers.js';
import { LAYER_NAMES, type WeightReader, type WeightSet } from './types.js';

const GROUP = '/data';

function matchArticle(file: Hdf5File): true | string {
  if (file.kind(GROUP) !== 'group') return `no group data (${describeTopLevel(file)})`;
  const keys = file.keys(GROUP);
  if (!keys.some((k) => k.endsWith('_w')))
    return `group data holds no <layer>_w datasets (it holds ${keys.slice(0, 8).join(', ') || 'nothing'})`;
  return true;
}

function storedLayers(file: Hdf5File): StoredLayer[] {
  const missing: string[] = [];
  for (const name of LAYER_NAMES) {
    for (const suffix of ['_w', '_b'])
      if (file.kind(`${GROUP}/${name}${suffix}`) !== 'dataset') missing.push(`data/${name}${suffix}`);
  }
  if (missing.length > 0) {
    throw new VggFaceError(
      'E_TOPOLOGY',
      `${file.path}: missing ${missing.join(', ')}; the article's layout has ` +
        `data/<layer>_w and data/<layer>_b for each of ${LAYER_NAMES.join(', ')}`,
      { input: file.path },
    );
  }
  return LAYER_NAMES.map((name) => ({
    canonical: name,
    sourceName: `data/${name}_w`,
    kernel: file.dataset(`${GROUP}/${name}_w`),
    bias: file.dataset(`${GROUP}/${name}_b`),
  }));
}

const readArticle = (path: string): Promise<WeightSet> =>
  readHdf5Weights(path, {
    format: 'hdf5-article',
    storedLayers,
    fc6InputOrder: 'CHW',
    describe: () =>
      "the article's HDF5 layout (data/<layer>_w, <layer>_b; kernels (kh, " +
      'kw, in, out), fc (in, out), fc6 inputs C,H,W)',
  });

export const hdf5ArticleReader: WeightReader = {
  id: 'hdf5-article',
  description: "the article's HDF5 layout (vgg_face.h5: group data, datasets <layer>_w, <layer>_b)",
  sniff: (head) => sniffHdf5(head),
  matchStructure: (path) => probeHdf5(path, matchArticle),
  read: readArticle,
};
