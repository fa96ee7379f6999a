/**
 * VggFace's describe methods, one implementation for the Node library (vggface.ts) and the browser build
 * (browser/vggface.ts): each extends this class with its own pixel work (decoding, detection, aligned crops) and
 * runtime (the ONNX Runtime session, the detector it opens), and inherits the same options, results and errors.
 * Pure, importing nothing Node-specific.
 */
import {
  describeCrops,
  describeFaceCrops,
  describeInBatches,
  type PreparedCrop,
  type PreparedPhoto,
} from './describe-batches.js';
import { resolveFacesOptions, type FacesOptions } from './describe-faces-options.js';
import {
  normalizeDescribeOptions,
  type DescribeOptions,
  type Layer,
  type NormalizedDescribeOptions,
} from './describe-options.js';
import { VggFaceError, invalidParameterError } from './errors.js';
import type { ResolvedAlignOptions } from './face/align-transform.js';
import type { ResolvedDetectOptions } from './face/detection.js';
import type { ModelInfo, ModelOutput } from './onnx/contract.js';
import * as check from './validate.js';
import type { DescribeFacesResult, DescribePhotoResult, DescribeResult } from './describe-results.js';
import { INPUT_SIZE } from './weights/topology.js';

/** describePhotos's options: describeFaces's, and how to choose between faces and images as given. */
export type PhotosOptions<D> = FacesOptions<D> & {
  readonly faces?: 'largest' | 'none';
  /** Only with `faces: 'none'`. */
  readonly fit?: DescribeOptions['fit'];
};

export abstract class DescribingModel<I, D extends { close(): Promise<void> }> {
  private closed = false;
  /** The detector describeFaces opened for itself (closed with the model). */
  private ownDetector: Promise<D> | undefined;

  /** Preprocessing, precision and widths of the loaded model. */
  abstract readonly info: ModelInfo;

  /**
   * @param overlap whether the next batch is prepared while the current one runs (describe-batches.ts, BatchSteps).
   */
  protected constructor(private readonly overlap: boolean) {}

  /** Decodes the inputs at positions start, start + 1, ... and brings each to 224x224; settles every one. */
  protected abstract prepareCrops(
    items: readonly I[],
    start: number,
    o: NormalizedDescribeOptions,
  ): Promise<readonly PreparedCrop[]>;

  /** Decodes the photos at positions start, start + 1, ..., finds their faces and cuts them; settles every one. */
  protected abstract prepareFaces(
    detector: D,
    items: readonly I[],
    start: number,
    detect: ResolvedDetectOptions,
    align: ResolvedAlignOptions,
  ): Promise<readonly PreparedPhoto[]>;

  /** Whether a value given as describeFaces's `detector` is one of this platform's. */
  protected abstract isDetector(value: unknown): value is D;

  /** Opens the detector describeFaces uses when none is given. */
  protected abstract openDetector(): Promise<D>;

  /** Runs the session on checked input: `count` crops packed in `pixels`. */
  protected abstract runSession(
    pixels: Uint8Array,
    count: number,
    outputs: readonly ModelOutput[],
  ): Promise<Record<string, { readonly data: Float32Array }>>;

  /** Releases the session. */
  protected abstract closeSession(): Promise<void>;

  /** Length of the vectors `describe` returns for `layer`. */
  dimension(layer: Layer = 'fc7'): number {
    return this.info.topology[layer];
  }

  /** Describes one image. */
  describe(input: I, options?: DescribeOptions): Promise<Float32Array>;
  /** Describes many images, batched; resolves in input order. Rejects on the first input that fails. */
  describe(inputs: readonly I[], options?: DescribeOptions): Promise<Float32Array[]>;
  async describe(inputs: I | readonly I[], options: DescribeOptions = {}): Promise<Float32Array | Float32Array[]> {
    const list = Array.isArray(inputs) ? (inputs as readonly I[]) : [inputs as I];
    const out: Float32Array[] = [];
    for await (const r of this.describeEach(list, options)) {
      if (r.error) throw r.error;
      out.push(r.descriptor);
    }
    return Array.isArray(inputs) ? out : out[0];
  }

  /**
   * Describes images (face crops, brought to 224x224 by `fit`) as a stream of results in input order: an input
   * that cannot be decoded yields its error and the others go on.
   */
  async *describeEach(inputs: Iterable<I>, options: DescribeOptions = {}): AsyncGenerator<DescribeResult> {
    this.assertOpen();
    const o = normalizeDescribeOptions(options, this.info.preprocessing === 'deepface' ? 'deepface' : 'crop');
    yield* describeInBatches([...inputs], o, {
      prepare: (items, start) => this.prepareCrops(items, start, o),
      overlap: this.overlap,
      describe: async (prepared, start): Promise<DescribeResult[]> => {
        const vectors = await describeCrops(this, prepared, o);
        return prepared.map((item, k) =>
          item.error
            ? { index: start + k, label: item.label, error: item.error }
            : { index: start + k, label: item.label, descriptor: vectors.get(k)! },
        );
      },
    });
  }

  /**
   * Describes every face in whole photos: each photo is decoded once (EXIF orientation applied), its faces found by
   * YuNet, aligned upright from the original pixels and described. Yields one result per photo, in input order;
   * a photo with no face yields `faces: []`, one that cannot be decoded yields its error and the others go on.
   * Photos are processed `batchSize` at a time (in Node the next batch is detected while the current one is described).
   */
  async *describeFaces(inputs: Iterable<I>, options: FacesOptions<D> = {}): AsyncGenerator<DescribeFacesResult> {
    this.assertOpen();
    const {
      detector: given,
      describe: o,
      detect,
      align,
    } = resolveFacesOptions(options, (d): d is D => this.isDetector(d), INPUT_SIZE);
    const detector = given ?? (await this.detector());
    yield* describeInBatches([...inputs], o, {
      prepare: (items, start) => this.prepareFaces(detector, items, start, detect, align),
      overlap: this.overlap,
      describe: async (photos, start): Promise<DescribeFacesResult[]> => {
        const vectors = await describeFaceCrops(this, photos, o);
        let v = 0;
        return photos.map((p, k) =>
          p.error
            ? { index: start + k, label: p.label, error: p.error }
            : {
                index: start + k,
                label: p.label,
                faces: p.faces.map((f) => ({ face: f.face, descriptor: vectors[v++] })),
              },
        );
      },
    });
  }

  /**
   * One descriptor per photo, the way verification and galleries need them: the largest face found in each photo
   * (a photo with no face yields an error saying so, marked `noFace`), or with `faces: 'none'` the image as given.
   */
  async *describePhotos(inputs: Iterable<I>, options: PhotosOptions<D> = {}): AsyncGenerator<DescribePhotoResult> {
    if (!check.isPlainObject(options)) throw invalidParameterError('options', 'an object', options);
    const { faces = 'largest', fit, ...rest } = options;
    check.oneOf('faces', faces, ['largest', 'none']);
    if (faces === 'none') {
      const { layer, normalize, batchSize, maxPixels, onProgress } = rest;
      yield* this.describeEach(inputs, { layer, normalize, batchSize, maxPixels, onProgress, fit });
      return;
    }
    if (fit !== undefined)
      throw invalidParameterError('fit', "undefined when faces are detected (use faces: 'none' for crops)", fit);
    for await (const r of this.describeFaces(inputs, { ...rest, maxFaces: 1 })) {
      if (r.error) yield { index: r.index, label: r.label, error: r.error };
      else if (r.faces.length === 0)
        yield {
          index: r.index,
          label: r.label,
          error: new VggFaceError('E_IMAGE', `${r.label}: no face found`, { input: r.label }),
          noFace: true,
        };
      else yield { index: r.index, label: r.label, descriptor: r.faces[0].descriptor, face: r.faces[0].face };
    }
  }

  /**
   * Runs the network on `count` images of 224x224 RGB already packed in `pixels` (count*224*224*3 bytes) and
   * returns the requested outputs, each a [count, width] row-major array. (In the browser the buffer is moved to
   * the worker: the call takes it over.)
   */
  async run(pixels: Uint8Array, count: number, outputs: readonly ModelOutput[]): Promise<Record<string, Float32Array>> {
    this.assertOpen();
    const per = INPUT_SIZE * INPUT_SIZE * 3;
    if (pixels.length !== count * per)
      throw invalidParameterError('pixels', `${count * per} bytes (${count} x 224x224x3)`, pixels);
    const res = await this.runSession(pixels, count, outputs);
    const out: Record<string, Float32Array> = {};
    for (const name of outputs) out[name] = res[name].data;
    return out;
  }

  /** Releases the session and the detector describeFaces opened. The instance cannot be used afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const detector = this.ownDetector;
    this.ownDetector = undefined;
    await this.closeSession();
    // A detector that failed to open has nothing to close; its error went to the describeFaces that opened it.
    if (detector) await (await detector.catch(() => undefined))?.close();
  }

  /** The detector describeFaces uses when none is given: opened once, on first use. */
  private detector(): Promise<D> {
    if (!this.ownDetector) {
      const opening = this.openDetector();
      this.ownDetector = opening;
      // A failed open is not kept, so a later call (e.g. once the network is back) tries again.
      opening.catch(() => {
        if (this.ownDetector === opening) this.ownDetector = undefined;
      });
    }
    return this.ownDetector;
  }

  private assertOpen(): void {
    if (this.closed) throw new VggFaceError('E_USAGE', 'this VggFace model was closed');
  }
}
