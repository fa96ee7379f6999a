/**
 * Fidelity of candidate models to a reference on real photos: per-image cosine of the descriptors, the same after
 * removing the reference's mean descriptor (random weights give every image a large shared component, so this
 * checks the part that tells images apart), and verification decisions that change over all pairs.
 */
import { VggFace } from '../../src/vggface.js';
import { compareDescriptors } from '../../src/verify/fidelity.js';
import { median } from '../../src/util/stats.js';
import { cosineSimilarity, distance } from '../../src/distance/distance.js';
import { openEngine } from '../../src/runtime/onnxruntime.js';
import { loadSquare } from '../../src/image/decode.js';
import { MODEL_INPUT } from '../../src/onnx/contract.js';
import { INPUT_SIZE } from '../../src/weights/topology.js';
import { finishTask, taskArgs } from '../harness.js';

const {
  reference,
  candidates,
  images,
  defaultKernels = [],
} = taskArgs<{
  reference: string;
  candidates: Record<string, string>;
  images: string[];
  /** Candidates to run with ONNX Runtime's default int8 kernels even where the library would pick the exact ones. */
  defaultKernels?: string[];
}>();

/** A session's descriptors of the images as `describe` prepares them (centre crop to 224x224). */
async function sessionDescriptors(model: string): Promise<Float32Array[]> {
  const engine = await openEngine(model, { exactInt8Kernels: false });
  try {
    const out: Float32Array[] = [];
    for (const path of images) {
      const img = await loadSquare(path, path, INPUT_SIZE);
      const r = await engine.run({ [MODEL_INPUT]: { data: img.data, dims: [1, INPUT_SIZE, INPUT_SIZE, 3] } }, [
        'descriptor',
      ]);
      out.push(r.descriptor.data.slice());
    }
    return out;
  } finally {
    await engine.close();
  }
}

async function describeAll(weights: string): Promise<Float32Array[]> {
  const m = await VggFace.load({ weights });
  try {
    return await m.describe(images);
  } finally {
    await m.close();
  }
}

const ref = await describeAll(reference);
// Threshold: the median reference distance over all pairs, where decisions are densest (so most fragile).
// Random weights have no meaningful same-person threshold; a trained model's would see fewer changes.
const distances: number[] = [];
for (let i = 0; i < ref.length; i++)
  for (let j = i + 1; j < ref.length; j++) distances.push(distance(ref[i], ref[j], 'cosine'));
const threshold = median(distances);
const mean = new Float32Array(ref[0].length);
for (const d of ref) d.forEach((v, k) => (mean[k] += v / ref.length));
const centred = (d: Float32Array) => d.map((v, k) => v - mean[k]);

const result: Record<string, unknown> = {
  images: images.length,
  threshold,
  referencePairDistance: { min: Math.min(...distances), median: threshold, max: Math.max(...distances) },
};
for (const [name, path] of Object.entries(candidates)) {
  const cand = defaultKernels.includes(name) ? await sessionDescriptors(path) : await describeAll(path);
  const r = compareDescriptors(images, ref, cand, { metric: 'cosine', threshold });
  const c = ref.map((d, i) => cosineSimilarity(centred(d), centred(cand[i])));
  result[name] = {
    cosine: r.cosine,
    centredCosine: { min: Math.min(...c), median: median(c) },
    pairs: r.pairs.total,
    changed: r.pairs.decisions!.changed,
    maxDistanceChange: r.pairs.maxDistanceChange,
  };
}
finishTask(result);
