/**
 * The describe loops of VggFace (describe-model.ts, for Node and the browser alike): inputs taken `batchSize` at a
 * time, each batch prepared (decoded to 224x224 crops, or its photos' faces found and cut), the crops run through
 * the network, and the results yielded in input order with progress after each batch. Pure, importing nothing
 * Node-specific: each platform brings its own pixel work (`prepare`) and model run.
 */
import { l2normalize, type NormalizedDescribeOptions, type Layer } from './describe-options.js';
import type { VggFaceError } from './errors.js';
import type { DetectedFace } from './face/types.js';
import type { RawImage } from './image/types.js';
import type { ModelOutput } from './onnx/contract.js';
import { INPUT_SIZE } from './weights/topology.js';

/** What the loops need of a model: VggFace's own `run` and `dimension`. */
export interface DescribeModel {
  /** Runs `count` 224x224 RGB crops packed in `pixels`; each output a [count, width] row-major array. */
  run(pixels: Uint8Array, count: number, outputs: readonly ModelOutput[]): Promise<Record<string, Float32Array>>;
  dimension(layer: Layer): number;
}

/** An input brought to a 224x224 crop, or why it could not be. */
export interface PreparedCrop {
  readonly label: string;
  readonly image?: RawImage;
  readonly error?: VggFaceError;
}

/** A photo's faces with their aligned crops (largest first, possibly none), or why it could not be read. */
export type PreparedPhoto =
  | {
      readonly label: string;
      readonly faces: readonly { readonly face: DetectedFace; readonly crop: RawImage }[];
      readonly error?: undefined;
    }
  | { readonly label: string; readonly faces?: undefined; readonly error: VggFaceError };

export interface BatchSteps<I, P, R> {
  /**
   * Prepares the inputs at positions start, start + 1, ...: one item each, in order. It settles every item and
   * never rejects, so a batch prepared ahead and left behind by a consumer that stopped cannot reject unobserved.
   */
  prepare(items: readonly I[], start: number): Promise<readonly P[]>;
  /**
   * Whether the next batch is prepared while the current one runs. Node's inference runs in a worker thread, so
   * decoding the next batch overlaps it; the browser does its pixel work in the Web Worker that runs inference, and
   * prepares each batch once the last one is done.
   */
  readonly overlap: boolean;
  /** The results of a prepared batch, one per input, in order. */
  describe(prepared: readonly P[], start: number): Promise<readonly R[]>;
}

/** The batch loop: inputs `batchSize` at a time, results yielded in input order, progress after each batch. */
export async function* describeInBatches<I, P, R>(
  inputs: readonly I[],
  o: NormalizedDescribeOptions,
  steps: BatchSteps<I, P, R>,
): AsyncGenerator<R> {
  const prepare = (start: number) => steps.prepare(inputs.slice(start, start + o.batchSize), start);
  let ahead: Promise<readonly P[]> | undefined;
  let done = 0;
  for (let start = 0; start < inputs.length; start += o.batchSize) {
    const prepared = await (ahead ?? prepare(start));
    const following = start + o.batchSize;
    ahead = steps.overlap && following < inputs.length ? prepare(following) : undefined;
    yield* await steps.describe(prepared, start);
    done += prepared.length;
    o.onProgress?.(done, inputs.length);
  }
}

/**
 * The vectors of the crops that have an image, by position, from one run. fc7 normalised is the model's own
 * `descriptor` output; any other layer is normalised here when asked.
 */
export async function describeCrops(
  model: DescribeModel,
  crops: readonly { readonly image?: RawImage }[],
  { layer, normalize }: NormalizedDescribeOptions,
): Promise<Map<number, Float32Array>> {
  const ok = crops.map((d, k) => ({ d, k })).filter((x) => x.d.image);
  const result = new Map<number, Float32Array>();
  if (ok.length === 0) return result;
  const per = INPUT_SIZE * INPUT_SIZE * 3;
  const pixels = new Uint8Array(ok.length * per);
  ok.forEach((x, i) => pixels.set(x.d.image!.data, i * per));
  const output: ModelOutput = layer === 'fc7' && normalize ? 'descriptor' : layer;
  const data = (await model.run(pixels, ok.length, [output]))[output];
  const width = model.dimension(layer);
  ok.forEach((x, i) => {
    const v = data.slice(i * width, (i + 1) * width);
    result.set(x.k, normalize && output !== 'descriptor' ? l2normalize(v) : v);
  });
  return result;
}

/** The vectors of every face crop of a batch of photos, in order, `batchSize` crops a run. */
export async function describeFaceCrops(
  model: DescribeModel,
  photos: readonly PreparedPhoto[],
  o: NormalizedDescribeOptions,
): Promise<Float32Array[]> {
  const crops = photos.flatMap((p) => p.faces?.map((f) => f.crop) ?? []);
  const vectors: Float32Array[] = [];
  for (let i = 0; i < crops.length; i += o.batchSize) {
    const batch = crops.slice(i, i + o.batchSize).map((image) => ({ image }));
    const got = await describeCrops(model, batch, o);
    batch.forEach((_, k) => vectors.push(got.get(k)!));
  }
  return vectors;
}
