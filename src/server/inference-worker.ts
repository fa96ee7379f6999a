/**
 * An inference worker thread: holds one descriptor model and one face detector, and runs the requests the main
 * thread hands it through the same steps as the library (decode, detect, align: `extractFaces`; crops as given:
 * `loadSquare`), so nothing heavy ever runs on the server's event loop.
 *
 * Two stages overlap: up to two photos are decoded and searched for faces at a time while the model describes
 * the faces already cut out, and every inference call takes the waiting faces of all requests together (up to
 * the batch size), so requests that arrive together share one call.
 */
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import sharp, { type Metadata } from 'sharp';
import { VggFaceError } from '../errors.js';
import { resolveAlignOptions, type ResolvedAlignOptions } from '../face/align.js';
import { FaceDetector, resolveDetectOptions, type ResolvedDetectOptions } from '../face/detector.js';
import { extractFaces } from '../face/pipeline.js';
import type { DetectedFace } from '../face/types.js';
import {
  decodeImage,
  loadSquare,
  sizeLimits,
  sizeProblem,
  SUPPORTED_FORMATS,
  type DecodeOptions,
  type Fit,
} from '../image/decode.js';
import type { ModelOutput } from '../onnx/contract.js';
import { sha256 } from '../util/hash.js';
import { modelIdentity } from '../model/identity.js';
import { l2normalize, VggFace } from '../vggface.js';
import { INPUT_SIZE } from '../weights/topology.js';
import { faceJson, vectorJson } from '../output/json.js';
import { ApiError, imageApiError } from './api-error.js';
import type { FromWorker, ImageResult, JobImage, JobSpec, ToWorker, WorkerSetup } from './protocol.js';

/** Photos decoded and searched for faces at once (a decoded 12 MP photo is 36 MB), as the library does. */
const EXTRACT_CONCURRENCY = 2;
const CROP_BYTES = INPUT_SIZE * INPUT_SIZE * 3;

interface FaceSlot {
  readonly face?: DetectedFace;
  vector?: Float32Array;
}

interface ImageState {
  width?: number;
  height?: number;
  sha256?: string;
  slots: FaceSlot[];
}

interface Job {
  readonly id: number;
  readonly spec: JobSpec;
  readonly images: readonly JobImage[];
  readonly states: ImageState[];
  readonly detect: ResolvedDetectOptions;
  readonly align: ResolvedAlignOptions;
  readonly fit: Fit;
  /** Images not yet decoded and cut into faces. */
  pendingImages: number;
  /** Faces cut out but not yet described. */
  pendingCrops: number;
  /** Answered, failed or cancelled: no more work for it. */
  finished: boolean;
  /** Photos being decoded and faces being described: work that goes on after a cancel, until it returns. */
  active: number;
  /** The main thread was told that nothing runs for it any more. */
  released: boolean;
}

interface Crop {
  readonly job: Job;
  readonly slot: FaceSlot;
  readonly pixels: Uint8Array;
  /** Faces batch together when they need the same output. */
  readonly output: ModelOutput;
}

/** `images[2] (me.jpg)`: how messages name an uploaded image. */
export function imageLabel(index: number, name: string | undefined): string {
  return name ? `images[${index}] (${name})` : `images[${index}]`;
}

const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;

/** Base64 (standard or URL-safe, padding optional, an optional `data:...;base64,` prefix) to bytes. */
export function decodeBase64(text: string, label: string): Uint8Array {
  const body = text.startsWith('data:') ? text.slice(text.indexOf(',') + 1) : text;
  if (body.length === 0 || !BASE64.test(body) || body.length % 4 === 1) {
    throw new ApiError(400, 'invalid_base64', `${label}: data is not valid base64`);
  }
  const buf = Buffer.from(body, 'base64');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Refuses from the header alone what must not be decoded: formats other than the supported ones (415) and images
 * over the pixel, side or aspect-ratio limit (413). What sharp cannot read at all is not an image (422).
 */
async function checkImage(bytes: Uint8Array, label: string, maxPixels: number): Promise<void> {
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch {
    throw new ApiError(422, 'invalid_image', `${label}: not a decodable image`);
  }
  if (!(SUPPORTED_FORMATS as readonly string[]).includes(meta.format ?? '')) {
    throw new ApiError(
      415,
      'unsupported_image_type',
      `${label}: ${meta.format ?? 'unknown'} images are not supported; send JPEG, PNG, WebP, TIFF, GIF or AVIF`,
    );
  }
  const w = meta.autoOrient?.width ?? meta.width;
  const h = meta.autoOrient?.height ?? meta.height;
  const problem = sizeProblem(w, h, sizeLimits({ maxPixels }), "the server's");
  if (problem) throw new ApiError(413, 'image_too_large', `${label}: ${problem.message}`);
}

export class Pipeline {
  private readonly jobs = new Map<number, Job>();
  private readonly photos: { job: Job; index: number }[] = [];
  private extracting = 0;
  private readonly crops: Crop[] = [];
  private inferring = false;

  constructor(
    private readonly model: VggFace,
    private readonly detector: FaceDetector,
    private readonly setup: Pick<WorkerSetup, 'batchSize' | 'maxPixels' | 'decodeTimeoutSeconds'>,
    private readonly post: (message: FromWorker, transfer?: ArrayBuffer[]) => void,
  ) {}

  submit(id: number, spec: JobSpec, images: readonly JobImage[]): void {
    let detect: ResolvedDetectOptions;
    let align: ResolvedAlignOptions;
    try {
      const d = spec.detection;
      detect = resolveDetectOptions({
        minScore: d.minScore,
        minFaceSize: d.minFaceSize,
        maxFaces: spec.faces === 'largest' ? 1 : d.maxFaces,
        maxPixels: this.setup.maxPixels,
      });
      align = resolveAlignOptions({ align: d.align, margin: d.margin, size: INPUT_SIZE });
    } catch (err) {
      this.post({ type: 'failed', id, error: imageApiError(err).toData() });
      this.post({ type: 'released', id });
      return;
    }
    const fit = spec.fit ?? (this.model.info.preprocessing === 'deepface' ? 'deepface' : 'crop');
    const job: Job = {
      id,
      spec,
      images,
      states: images.map(() => ({ slots: [] })),
      detect,
      align,
      fit,
      pendingImages: images.length,
      pendingCrops: 0,
      finished: false,
      active: 0,
      released: false,
    };
    this.jobs.set(id, job);
    images.forEach((_, index) => this.photos.push({ job, index }));
    this.pump();
  }

  /** Stops a request's work: photos not started are skipped, faces not described are dropped. */
  cancel(id: number): void {
    const job = this.jobs.get(id);
    if (!job) return;
    this.finish(job);
    this.releaseIfIdle(job);
  }

  /**
   * A photo being decoded cannot be stopped (sharp's time limit bounds it), so a job that failed or was cancelled is
   * reported released only once its running work has returned: until then the main thread counts its images as
   * in flight (and /healthz shows them), and gives this worker no more than it can hold.
   */
  private releaseIfIdle(job: Job): void {
    if (!job.finished || job.active > 0 || job.released) return;
    job.released = true;
    this.post({ type: 'released', id: job.id });
  }

  private begin(job: Job): void {
    job.active++;
  }

  private end(job: Job): void {
    job.active--;
    this.releaseIfIdle(job);
  }

  private idleWaiters: (() => void)[] = [];

  /** Resolves once no photo is being decoded and no inference runs (work of cancelled requests included). */
  whenIdle(): Promise<void> {
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.checkIdle();
    });
  }

  private checkIdle(): void {
    if (this.extracting > 0 || this.inferring || this.photos.some((p) => !p.job.finished)) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private finish(job: Job): void {
    job.finished = true;
    this.jobs.delete(job.id);
  }

  private fail(job: Job, err: unknown): void {
    if (job.finished) return;
    this.finish(job);
    const apiError = imageApiError(err);
    if (apiError.status === 500) console.error(`vggface serve worker: request ${job.id}:`, err);
    this.post({ type: 'failed', id: job.id, error: apiError.toData() });
    this.releaseIfIdle(job);
  }

  private pump(): void {
    while (this.extracting < EXTRACT_CONCURRENCY && this.photos.length > 0) {
      const next = this.photos.shift()!;
      if (next.job.finished) continue;
      this.extracting++;
      this.begin(next.job);
      this.extract(next.job, next.index).finally(() => {
        this.extracting--;
        this.end(next.job);
        this.pump();
        void this.infer();
        this.checkIdle();
      });
    }
  }

  private async extract(job: Job, index: number): Promise<void> {
    try {
      const image = job.images[index];
      const label = imageLabel(index, image.name);
      const bytes = typeof image.data === 'string' ? decodeBase64(image.data, label) : image.data;
      const state = job.states[index];
      if (job.spec.hash) state.sha256 = sha256(bytes);
      await checkImage(bytes, label, this.setup.maxPixels);
      if (job.finished) return;
      const output = outputFor(job.spec);
      const decode: DecodeOptions = {
        maxPixels: this.setup.maxPixels,
        timeoutSeconds: this.setup.decodeTimeoutSeconds,
      };
      if (job.spec.faces === 'none') {
        const crop = await loadSquare(bytes, label, INPUT_SIZE, { ...decode, fit: job.fit });
        state.slots = [{}];
        this.crops.push({ job, slot: state.slots[0], pixels: crop.data, output });
      } else {
        const image = await decodeImage(bytes, label, decode);
        if (job.finished) return;
        const photo = await extractFaces(this.detector, image, label, job.detect, job.align);
        if (job.spec.faces === 'largest' && photo.faces.length === 0)
          throw new ApiError(422, 'no_face', `${label}: no face found`);
        state.width = photo.width;
        state.height = photo.height;
        state.slots = photo.faces.map((f) => ({ face: f.face }));
        photo.faces.forEach((f, k) => this.crops.push({ job, slot: state.slots[k], pixels: f.crop.data, output }));
      }
      if (job.finished) return;
      job.pendingImages--;
      job.pendingCrops += state.slots.length;
      this.maybeAnswer(job);
    } catch (err) {
      this.fail(job, err);
    }
  }

  /** Describes waiting faces, a batch at a time, until none wait. One call at a time: ONNX Runtime uses every core. */
  private async infer(): Promise<void> {
    if (this.inferring) return;
    this.inferring = true;
    try {
      while (this.crops.length > 0) {
        // While more photos are on their way, wait for a full batch: ONNX Runtime does more per call, and the
        // cores go to decoding and detection meanwhile. With nothing more coming, run what there is.
        if (this.crops.length < this.setup.batchSize && (this.extracting > 0 || this.photos.length > 0)) break;
        const output = this.crops[0].output;
        const batch: Crop[] = [];
        for (let i = 0; i < this.crops.length && batch.length < this.setup.batchSize; ) {
          const c = this.crops[i];
          if (c.job.finished) this.crops.splice(i, 1);
          else if (c.output === output) batch.push(...this.crops.splice(i, 1));
          else i++;
        }
        if (batch.length === 0) continue;
        for (const c of batch) this.begin(c.job);
        try {
          await this.describe(batch, output);
        } catch (err) {
          for (const c of batch) this.fail(c.job, err);
        }
        for (const c of batch) {
          if (!c.job.finished) {
            c.job.pendingCrops--;
            this.maybeAnswer(c.job);
          }
          this.end(c.job);
        }
      }
    } finally {
      this.inferring = false;
      this.checkIdle();
    }
  }

  private async describe(batch: readonly Crop[], output: ModelOutput): Promise<void> {
    const pixels = new Uint8Array(batch.length * CROP_BYTES);
    batch.forEach((c, i) => pixels.set(c.pixels, i * CROP_BYTES));
    const start = performance.now();
    const data = (await this.model.run(pixels, batch.length, [output]))[output];
    this.post({ type: 'batch', size: batch.length, seconds: (performance.now() - start) / 1000 });
    const width = this.model.dimension(batch[0].job.spec.layer);
    batch.forEach((c, i) => {
      const v = data.slice(i * width, (i + 1) * width);
      // As the library's describe: the graph's `descriptor` output is already normalised; other layers are normalised
      // here.
      c.slot.vector = c.job.spec.normalize && output !== 'descriptor' ? l2normalize(v) : v;
    });
  }

  private maybeAnswer(job: Job): void {
    if (job.finished || job.pendingImages > 0 || job.pendingCrops > 0) return;
    this.finish(job);
    job.released = true; // an answer releases the job: all its work is done
    const transfer: ArrayBuffer[] = [];
    const results: ImageResult[] = job.states.map((s, index) => {
      if (job.spec.output === 'json')
        return { json: imageJson(job.images[index].name, s, job.spec.faces === 'none'), faces: s.slots.length };
      const slot = s.slots[0];
      transfer.push(slot.vector!.buffer as ArrayBuffer);
      return { width: s.width, height: s.height, face: slot.face, descriptor: slot.vector!, sha256: s.sha256 };
    });
    this.post({ type: 'done', id: job.id, results }, transfer);
  }
}

function outputFor(spec: JobSpec): ModelOutput {
  return spec.layer === 'fc7' && spec.normalize ? 'descriptor' : spec.layer;
}

/**
 * `{"name", "width", "height", "faces": [{"box", "score", "landmarks", "descriptor"}]}`, numbers as the CLI writes
 * them.
 */
function imageJson(name: string | undefined, s: ImageState, crop: boolean): string {
  const faces = s.slots.map((slot) => {
    const vector = `"descriptor":${vectorJson(slot.vector!)}`;
    return slot.face ? `${faceJson(slot.face).slice(0, -1)},${vector}}` : `{${vector}}`;
  });
  const head = name === undefined ? '' : `"name":${JSON.stringify(name)},`;
  const size = crop ? '' : `"width":${s.width},"height":${s.height},`;
  return `{${head}${size}"faces":[${faces.join(',')}]}`;
}

/**
 * Linux: lowers this thread's scheduling priority to nice 10 before the sessions open, so the ONNX Runtime
 * threads they start (which inherit it) yield the cores to the event loop at once: inference is batch work, the
 * HTTP thread is what must answer quickly. Elsewhere, or without /proc, the scheduler decides as usual.
 */
function yieldToEventLoop(): void {
  let tid: number;
  try {
    tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return; // not Linux
  }
  if (Number.isInteger(tid) && tid > 0) setPriority(tid, Math.max(getPriority(tid), 10));
}

/**
 * Seconds one photo takes here: a synthetic 1024x768 JPEG decoded and searched for faces, and one face described,
 * timed on a second run (the first warms the sessions up). The server's estimate of its per-image time until real
 * requests are timed, so a cold burst is not told to retry in 1 s.
 */
async function timeOnePhoto(model: VggFace, detector: FaceDetector): Promise<number> {
  const jpeg = await sharp({
    create: { width: 1024, height: 768, channels: 3, background: { r: 128, g: 128, b: 128 } },
  })
    .jpeg()
    .toBuffer();
  const detect = resolveDetectOptions({});
  const align = resolveAlignOptions({ size: INPUT_SIZE });
  const run = async () => {
    await extractFaces(detector, jpeg, 'warm-up', detect, align);
    await model.run(new Uint8Array(CROP_BYTES), 1, ['descriptor']);
  };
  await run();
  const start = performance.now();
  await run();
  return (performance.now() - start) / 1000;
}

async function start(setup: WorkerSetup, port: NonNullable<typeof parentPort>): Promise<void> {
  const post = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
  yieldToEventLoop();
  let model: VggFace | undefined;
  let detector: FaceDetector | undefined;
  try {
    model = await VggFace.load({ ...setup.load, threads: setup.threads });
    detector = await FaceDetector.open({
      model: setup.detectorModel,
      cacheDir: setup.load.cacheDir,
      threads: setup.threads,
    });
    const identity = await modelIdentity(model);
    const secondsPerImage = await timeOnePhoto(model, detector);
    const pipeline = new Pipeline(model, detector, setup, post);
    port.on('message', (m: ToWorker) => {
      if (m.type === 'job') pipeline.submit(m.id, m.spec, m.images);
      else if (m.type === 'cancel') pipeline.cancel(m.id);
      else if (m.type === 'close') {
        // Sessions are released only once nothing runs on them (a cancelled request's photo may still be in work).
        void pipeline
          .whenIdle()
          .then(() => Promise.all([model!.close(), detector!.close()]))
          .then(() => {
            post({ type: 'closed' });
            port.close();
          });
      }
    });
    post({ type: 'ready', modelPath: model.modelPath, info: model.info, identity, secondsPerImage });
  } catch (err) {
    await model?.close();
    await detector?.close();
    post({
      type: 'fatal',
      code: err instanceof VggFaceError ? err.code : undefined,
      message: String((err as Error)?.message ?? err),
    });
    port.close();
  }
}

if (parentPort && (workerData as { role?: string } | undefined)?.role === 'vggface-inference') {
  void start((workerData as { setup: WorkerSetup }).setup, parentPort);
}
