/**
 * A worker: takes batches from the runs its model can describe, describes them with the library (the same
 * pipeline and settings as `describe`), and stores each batch's results in the transaction that completes its
 * job. At-least-once delivery (a crashed worker's batch runs again elsewhere) with an exactly-once effect: results
 * are keyed by (run, reference) and inserted with ON CONFLICT DO NOTHING, and a batch that runs again skips the
 * photos already recorded.
 *
 * Each of `concurrency` slots holds its own model (and detector) and describes two batches at a time, so that one's
 * reading, decoding and face detection overlap the other's inference (as `describe` overlaps its chunks). `stop()`
 * (SIGTERM) takes
 * no new batch, lets the batches in hand finish, and after `graceSeconds` gives back those still unfinished
 * (cancel + resume in one transaction: back to `created`, no try spent) so another worker takes them at once.
 */
import { hostname } from 'node:os';
import type pg from 'pg';
import type { VggFaceError } from '../errors.js';
import { FaceDetector } from '../face/detector.js';
import { Gallery } from '../gallery/gallery.js';
import { ensureDetectorModel } from '../face/detector-model.js';
import { faceSettings } from '../describe-options.js';
import { envValue } from '../util/env.js';
import { sha256, sha256File } from '../util/hash.js';
import { defaultCacheDir } from '../util/paths.js';
import { VggFace, type LoadOptions } from '../vggface.js';
import { startBoss, stopBoss, type Boss, type BossJob } from './boss.js';
import { isTransient, openPool, queueError, retrying, transaction } from './db.js';
import { bindingOfModel } from './model.js';
import { readReference, type FetchLimits } from './references.js';
import {
  bindRun,
  describeBinding,
  ensureSchema,
  insertResults,
  listOpenRuns,
  recordedReferences,
  requireRun,
  type BatchData,
  type ModelBinding,
  type PhotoResult,
  type Run,
} from './store.js';

export interface WorkerOptions {
  readonly db: string;
  /** Copies of the model, each describing two batches at a time. */
  readonly concurrency: number;
  /** How the model loads (weights, precision, threads per slot, cache). */
  readonly load: LoadOptions;
  /** YuNet file (default: $VGGFACE_DETECTOR_MODEL, else the cached download). */
  readonly detectorModel?: string;
  /** Work on this run only (a model mismatch is then an error at start). */
  readonly run?: string;
  /** Exit once the runs this worker can serve have nothing queued or in flight. */
  readonly untilDone: boolean;
  readonly pollSeconds: number;
  readonly maintenanceIntervalSeconds: number;
  /** After stop(), how long batches in hand may take before they are given back. */
  readonly graceSeconds: number;
  readonly limits: FetchLimits;
  readonly log: (line: string) => void;
}

interface Slot {
  readonly n: number;
  model: VggFace;
  detector?: Promise<FaceDetector>;
}

/** One batch at a time on a slot's model. */
interface Lane {
  readonly slot: Slot;
  readonly n: number;
  held?: { run: Run; job: BossJob<BatchData> };
  /** The gallery in the queue's database, for runs into a gallery (opened on first use; one connection per lane). */
  gallery?: Gallery;
}

/** Batches in flight on one model. */
const LANES_PER_SLOT = 2;

type Prepared = { ok: true } | { ok: false; reason: string };

const READ_PARALLEL = 8;
const RUNS_REFRESH_MS = 5000;

/** "input #3: no face found" -> "no face found": results keep the reference and the reason apart. */
const reasonOf = (err: VggFaceError) => err.message.replace(/^input #\d+: /, '');

/** A photo of a batch, as read: where it stands in the batch, its reference and (runs into a gallery) identity. */
type BatchPhoto = Pick<PhotoResult, 'idx' | 'reference' | 'identity'>;

/** A photo's result: which photo of the batch, and its outcome. */
const photoResult = (p: BatchPhoto, outcome: Omit<PhotoResult, keyof BatchPhoto>): PhotoResult => ({
  idx: p.idx,
  reference: p.reference,
  identity: p.identity,
  ...outcome,
});

/** A photo that was read (so its content hash is known) but could not be described. */
const failedResult = (p: BatchPhoto, sha: string, err: VggFaceError): PhotoResult =>
  photoResult(p, { status: 'failed', sha256: sha, error: reasonOf(err), descriptors: [] });

export class QueueWorker {
  readonly id = `${hostname()}:${process.pid}`;
  private stopping = false;
  private readonly waiters = new Set<() => void>();
  private readonly slots: Slot[] = [];
  private readonly lanes: Lane[] = [];
  private binding!: ModelBinding;
  private detectorSha: Promise<{ path: string; sha: string }> | undefined;
  private readonly prepared = new Map<string, Promise<Prepared>>();
  private runs: Run[] = [];
  private runsAt = 0;
  private lastDbNote = 0;
  private stats = { batches: 0, photos: 0, givenBack: 0 };

  private constructor(
    private readonly o: WorkerOptions,
    private readonly pool: pg.Pool,
    private readonly boss: Boss,
  ) {}

  /** Connects, loads the model and checks it against the run(s); rejects when it cannot serve what it was asked to. */
  static async start(o: WorkerOptions): Promise<QueueWorker> {
    const app = `vggface-worker ${hostname()} pid ${process.pid}`;
    const pool = await openPool(o.db, { applicationName: app, max: o.concurrency * 2 + 2 });
    let boss: Boss | undefined;
    try {
      await ensureSchema(pool);
      let w: QueueWorker | undefined;
      boss = await startBoss(o.db, {
        applicationName: app,
        supervise: true,
        maintenanceIntervalSeconds: o.maintenanceIntervalSeconds,
        max: o.concurrency + 2,
        onError: (err) => w?.dbNote(err),
      });
      w = new QueueWorker(o, pool, boss);
      await w.init();
      return w;
    } catch (err) {
      if (boss) await stopBoss(boss);
      await pool.end().catch(() => {});
      throw err;
    }
  }

  private async init(): Promise<void> {
    const explicit = this.o.run ? await requireRun(this.pool, this.o.run) : undefined;
    try {
      for (let n = 0; n < this.o.concurrency; n++) {
        const model = await VggFace.load(this.o.load);
        const slot: Slot = { n, model };
        this.slots.push(slot);
        // Opened now, as describe does, so the first batch does not wait for it; runs without detection never
        // need it, so a detector that cannot be had is only an error for the first batch that needs it.
        this.openDetector(slot).catch(() => {});
        for (let l = 0; l < LANES_PER_SLOT; l++) this.lanes.push({ slot, n: this.lanes.length });
        if (n === 0) {
          this.binding = await bindingOfModel(model);
          // Refuse at once what cannot be served, before loading more copies of the model.
          if (explicit) {
            const p = await this.prepare(explicit);
            if (!p.ok) throw queueError(p.reason, { input: explicit.id });
          } else {
            await this.refuseIfNothingMatches();
          }
        }
      }
    } catch (err) {
      await this.closeSlots();
      throw err;
    }
    this.o.log(
      `worker ${this.id}: model ${describeBinding(this.binding)}, ${this.o.concurrency} ` +
        `slot${this.o.concurrency > 1 ? 's' : ''}${this.o.run ? `, run ${this.o.run}` : ''}`,
    );
  }

  /** Open runs all bound to other models: this worker can do nothing for them, and says so. */
  private async refuseIfNothingMatches(): Promise<void> {
    const open = await this.openRuns();
    if (open.length === 0) return;
    const others = open.filter((r) => r.model && r.model.key !== this.binding.key);
    if (others.length === open.length) {
      throw queueError(
        `this worker's model is ${describeBinding(this.binding)}, but every open run is bound to another: ` +
          others.map((r) => `run ${r.id}: ${describeBinding(r.model!)}`).join('; ') +
          ". Start the worker with the run's weights and flags (descriptors of different models cannot be mixed)",
      );
    }
  }

  /** Runs with batches queued or in flight, oldest first (optionally just the worker's run). */
  private openRuns(): Promise<Run[]> {
    return listOpenRuns(this.pool, this.o.run);
  }

  /**
   * Binds a run to this worker's model and detector if it has none yet, and checks that it is bound to them: the
   * first worker decides (atomically), later ones must match.
   */
  private prepare(run: Run): Promise<Prepared> {
    let p = this.prepared.get(run.id);
    if (!p) {
      p = (async (): Promise<Prepared> => {
        let detector: string | null = null;
        if (run.settings.detector !== 'none') detector = (await this.detectorFile()).sha;
        const bound = await bindRun(this.pool, run.id, this.binding, detector);
        if (bound.model.key !== this.binding.key) {
          return {
            ok: false,
            reason:
              `run ${run.id} is bound to model ${describeBinding(bound.model)}; this ` +
              `worker loaded ${describeBinding(this.binding)}. ` +
              `Start the worker with that run's weights and flags (descriptors of different models cannot be mixed)`,
          };
        }
        if (detector !== null && bound.detector !== null && bound.detector !== detector) {
          return {
            ok: false,
            reason:
              `run ${run.id} is bound to the face detector with ` +
              `sha256 ${bound.detector.slice(0, 12)}...; this worker's ` +
              `(${(await this.detectorFile()).path}) is ${detector.slice(0, 12)}...: pass the same --detector-model`,
          };
        }
        return { ok: true };
      })();
      // A database error is not an answer: try again next time.
      p.catch(() => this.prepared.delete(run.id));
      this.prepared.set(run.id, p);
    }
    return p;
  }

  private detectorFile(): Promise<{ path: string; sha: string }> {
    this.detectorSha ??= (async () => {
      const path = await ensureDetectorModel({
        model: this.o.detectorModel ?? envValue('detectorModel'),
        cacheDir: this.o.load.cacheDir ?? defaultCacheDir(),
      });
      return { path, sha: await sha256File(path) };
    })();
    this.detectorSha.catch(() => (this.detectorSha = undefined));
    return this.detectorSha;
  }

  /** Reports database trouble (at most every 10 s): the worker keeps trying. */
  private dbNote(err: unknown): void {
    if (Date.now() - this.lastDbNote < 10_000) return;
    this.lastDbNote = Date.now();
    this.o.log(`worker ${this.id}: database unavailable, retrying: ${(err as Error)?.message ?? String(err)}`);
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.waiters.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  private wakeAll(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Works until stopped (or, with untilDone, until nothing is left). */
  async run(): Promise<{ batches: number; photos: number; givenBack: number }> {
    let fatal: unknown;
    await Promise.all(
      this.lanes.map((lane) =>
        this.laneLoop(lane).catch((err: unknown) => {
          // Not a database outage (those are waited out): the other lanes finish their batches, then it is reported.
          fatal ??= err;
          this.stopping = true;
          this.wakeAll();
        }),
      ),
    );
    await this.close();
    if (fatal !== undefined) throw fatal;
    return this.stats;
  }

  /** Takes no new batch; after the grace period, gives back the batches still in hand. */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.wakeAll();
    const t = setTimeout(() => void this.releaseHeld(), this.o.graceSeconds * 1000);
    t.unref();
  }

  private released = false;

  /** Gives back every batch in hand (cancel, then resume: `created` again, its try not spent). */
  private async releaseHeld(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const held = this.lanes.filter((l) => l.held).map((l) => l.held!);
    for (const h of held) {
      try {
        await transaction(this.pool, async (_client, executor) => {
          await this.boss.cancel(h.run.queue, h.job.id, { db: executor as never });
          await this.boss.resume(h.run.queue, h.job.id, { db: executor as never });
        });
        this.stats.givenBack++;
        this.o.log(`worker ${this.id}: run ${h.run.id} batch ${h.job.data.batch}: given back unfinished`);
      } catch (err) {
        this.o.log(
          `worker ${this.id}: run ${h.run.id} batch ${h.job.data.batch}: could not be given back ` +
            `(${(err as Error).message}); it goes to another worker after its timeout`,
        );
      }
    }
    this.releasedResolve?.();
  }

  private releasedResolve: (() => void) | undefined;
  private readonly releasedPromise = new Promise<void>((r) => (this.releasedResolve = r));

  private async eligibleRuns(): Promise<Run[]> {
    if (Date.now() - this.runsAt > RUNS_REFRESH_MS) {
      this.runs = await this.openRuns();
      this.runsAt = Date.now();
    }
    const out: Run[] = [];
    for (const run of this.runs) {
      if (run.model && run.model.key !== this.binding.key) continue;
      const p = await this.prepare(run);
      if (p.ok) out.push(run);
      else if (!this.skippedNoted.has(run.id)) {
        this.skippedNoted.add(run.id);
        this.o.log(`worker ${this.id}: skipping ${p.reason}`);
      }
    }
    return out;
  }

  private readonly skippedNoted = new Set<string>();

  private async take(): Promise<{ run: Run; job: BossJob<BatchData> } | undefined> {
    for (const run of await this.eligibleRuns()) {
      if (this.stopping) return undefined;
      const jobs = await this.boss.fetch<BatchData>(run.queue, { batchSize: 1, includeMetadata: true });
      if (jobs.length > 0) return { run, job: jobs[0] };
    }
    return undefined;
  }

  /** Whether the runs this worker serves have nothing queued, waiting to be retried, or held by a worker. */
  private async nothingLeft(): Promise<boolean> {
    this.runsAt = 0;
    return (await this.eligibleRuns()).length === 0;
  }

  private async laneLoop(lane: Lane): Promise<void> {
    while (!this.stopping) {
      let got: { run: Run; job: BossJob<BatchData> } | undefined;
      try {
        got = await this.take();
        if (!got) {
          if (this.o.untilDone && (await this.nothingLeft())) {
            this.stopping = true;
            this.wakeAll();
            return;
          }
          await this.sleep(this.o.pollSeconds * 1000);
          continue;
        }
      } catch (err) {
        if (!isTransient(err)) throw err;
        this.dbNote(err);
        await this.sleep(1000);
        continue;
      }
      lane.held = got;
      try {
        await Promise.race([this.handle(lane, got.run, got.job), this.releasedPromise]);
      } finally {
        lane.held = undefined;
      }
      if (this.released) return;
    }
  }

  private async handle(lane: Lane, run: Run, job: BossJob<BatchData>): Promise<void> {
    const started = Date.now();
    const { batch, refs } = job.data;
    const tag = `worker ${this.id} slot ${lane.slot.n}: run ${run.id} batch ${batch}`;
    this.o.log(`${tag}: started (${refs.length} photos, try ${job.retryCount + 1})`);
    // Past this, pg-boss may hand the batch to another worker: stop retrying the commit then.
    const expires = started + job.expireInSeconds * 1000;
    let results: PhotoResult[];
    try {
      results = await this.describeBatch(lane.slot, run, job.data, () => Date.now() > expires);
      if (run.into === 'gallery') results = await this.addToGallery(lane, results);
    } catch (err) {
      await this.failJob(tag, run, job, err, expires);
      return;
    }
    const summary = { worker: this.id, described: 0, noFace: 0, failed: 0 };
    for (const r of results)
      summary[r.status === 'described' ? 'described' : r.status === 'no_face' ? 'noFace' : 'failed']++;
    if (this.released) return;
    try {
      const { inserted, completed } = await retrying(
        () =>
          transaction(this.pool, async (client, executor) => {
            const inserted = await insertResults(client, run.id, batch, this.id, results);
            const res = (await this.boss.complete(run.queue, job.id, summary, {
              db: executor as never,
            })) as unknown as { affected: number };
            return { inserted, completed: res.affected };
          }),
        { until: () => Date.now() > expires, onRetry: (e) => this.dbNote(e) },
      );
      this.stats.batches++;
      this.stats.photos += inserted;
      const skipped = refs.length - results.length;
      this.o.log(
        `${tag}: done in ${((Date.now() - started) / 1000).toFixed(1)} s: ${summary.described} ` +
          `described, ${summary.noFace} without a face, ${summary.failed} failed` +
          `${skipped ? `, ${skipped} already recorded` : ''}` +
          `${inserted < results.length ? `, ${results.length - inserted} recorded meanwhile by another worker` : ''}` +
          `${completed === 0 ? " (the batch was no longer this worker's: it ran past its timeout)" : ''}`,
      );
    } catch (err) {
      if (isTransient(err))
        this.o.log(
          `${tag}: results not stored (${(err as Error).message}); the batch goes to another worker after its timeout`,
        );
      else await this.failJob(tag, run, job, err, expires);
    }
  }

  /** A batch that failed as a whole: pg-boss retries it, and after the run's retries it is dead, with this error. */
  private async failJob(tag: string, run: Run, job: BossJob<BatchData>, err: unknown, expires: number): Promise<void> {
    if (this.released) return; // given back: no longer this worker's to fail
    const message = (err as Error)?.message ?? String(err);
    this.o.log(`${tag}: failed: ${message}`);
    await retrying(() => this.boss.fail(run.queue, job.id, { message }), {
      until: () => Date.now() > expires,
      onRetry: (e) => this.dbNote(e),
    }).catch(() => {});
  }

  /**
   * Adds a gallery run's described photos to the gallery, before their results are stored: adding is idempotent
   * (the gallery keeps one face per content sha256), so a batch that runs again after a crash adds nothing twice.
   */
  private async addToGallery(lane: Lane, results: PhotoResult[]): Promise<PhotoResult[]> {
    const described = results.filter((r) => r.status === 'described');
    if (described.length === 0) return results;
    try {
      lane.gallery ??= await Gallery.open(lane.slot.model, { db: this.o.db, create: true });
      const outcome = new Map<string, 'added' | 'duplicate'>();
      const byIdentity = new Map<string, PhotoResult[]>();
      for (const r of described) byIdentity.set(r.identity!, [...(byIdentity.get(r.identity!) ?? []), r]);
      for (const [identity, items] of byIdentity) {
        const added = await lane.gallery.addDescriptors(
          identity,
          items.map((r) => ({ label: r.reference, contentHash: r.sha256!, descriptor: r.descriptors[0] })),
        );
        added.forEach((a, i) => outcome.set(items[i].reference, a.status === 'added' ? 'added' : 'duplicate'));
      }
      return results.map((r) => (outcome.has(r.reference) ? { ...r, gallery: outcome.get(r.reference) } : r));
    } catch (err) {
      // A gallery whose connection broke is opened again for the next batch.
      await lane.gallery?.close().catch(() => {});
      lane.gallery = undefined;
      throw err;
    }
  }

  /** Describes the photos of a batch not yet recorded; a photo that fails is a result, not an exception. */
  private async describeBatch(slot: Slot, run: Run, data: BatchData, late: () => boolean): Promise<PhotoResult[]> {
    const done = await retrying(
      () =>
        recordedReferences(
          this.pool,
          run.id,
          data.refs.map((r) => r[1]),
        ),
      { until: late, onRetry: (e) => this.dbNote(e) },
    );
    const todo = data.refs.filter((r) => !done.has(r[1]));
    const read: { idx: number; reference: string; identity?: string; bytes?: Buffer; error?: string }[] = todo.map(
      (r) => ({ idx: r[0], reference: r[1], identity: r[2] }),
    );
    for (let i = 0; i < read.length; i += READ_PARALLEL) {
      await Promise.all(
        read.slice(i, i + READ_PARALLEL).map(async (item) => {
          const got = await readReference(item.reference, this.o.limits);
          if (got.bytes) item.bytes = got.bytes;
          else item.error = got.error;
        }),
      );
    }
    const results: PhotoResult[] = [];
    const readable = read.filter((r) => r.bytes);
    for (const r of read)
      if (!r.bytes) results.push(photoResult(r, { status: 'failed', error: r.error, descriptors: [] }));
    const s = run.settings;
    const common = { layer: s.layer, normalize: s.normalize, batchSize: s.inferenceBatch, maxPixels: s.maxPixels };
    const inputs = readable.map((r) => r.bytes!);
    if (s.detector === 'none') {
      for await (const r of slot.model.describeEach(inputs, { ...common, fit: s.fit })) {
        const item = readable[r.index];
        const sha = sha256(item.bytes!);
        if (r.error) results.push(failedResult(item, sha, r.error));
        else results.push(photoResult(item, { status: 'described', sha256: sha, descriptors: [r.descriptor] }));
      }
    } else {
      const detector = await this.openDetector(slot);
      for await (const r of slot.model.describeFaces(inputs, { ...common, detector, ...faceSettings(s) })) {
        const item = readable[r.index];
        const sha = sha256(item.bytes!);
        if (r.error) results.push(failedResult(item, sha, r.error));
        else if (r.faces.length === 0)
          results.push(photoResult(item, { status: 'no_face', sha256: sha, faces: [], descriptors: [] }));
        else
          results.push(
            photoResult(item, {
              status: 'described',
              sha256: sha,
              faces: r.faces.map((f) => f.face),
              descriptors: r.faces.map((f) => f.descriptor),
            }),
          );
      }
    }
    return results.sort((a, b) => a.idx - b.idx);
  }

  /** The slot's face detector, opened once (a failed open is tried again by the next batch, which reports it). */
  private openDetector(slot: Slot): Promise<FaceDetector> {
    if (!slot.detector) {
      const opening = this.detectorFile().then((f) =>
        FaceDetector.open({ model: f.path, threads: this.o.load.threads }),
      );
      slot.detector = opening;
      opening.catch(() => {
        if (slot.detector === opening) slot.detector = undefined;
      });
    }
    return slot.detector;
  }

  private async closeSlots(): Promise<void> {
    for (const l of this.lanes) await l.gallery?.close().catch(() => {});
    for (const s of this.slots) {
      await s.model.close().catch(() => {});
      await (await s.detector?.catch(() => undefined))?.close().catch(() => {});
    }
  }

  /** Closes everything; a batch given back may still hold a connection or the model: none of it is waited for long. */
  private async close(): Promise<void> {
    const within = (p: Promise<unknown>, ms: number) =>
      Promise.race([p.catch(() => {}), new Promise((r) => setTimeout(r, ms).unref())]);
    await within(this.closeSlots(), 10_000);
    await within(stopBoss(this.boss), 5000);
    await within(this.pool.end(), 2000);
  }
}
