/**
 * The queue's own tables, beside pg-boss's (which live in their own schema, {@link BOSS_SCHEMA}):
 *
 * - `vggface_queue_runs`: one row per submitted run: how many photos and batches, the pipeline settings every
 *   worker must use, and the model it is bound to (given at submit, or by the first worker that takes a batch).
 * - `vggface_queue_results`: one row per photo and run, primary key (run, reference): the outcome (described,
 *   no face, failed with its reason), the content's sha256, the faces and their descriptors (float32 rows), and for
 *   runs into a gallery whether the photo was added to it or was already there (same content). A
 *   worker inserts with ON CONFLICT DO NOTHING in the transaction that completes the batch's job, so a photo is
 *   stored once however many times its batch runs.
 */
import type pg from 'pg';
import type { DetectedFace } from '../face/types.js';
import { LANDMARK_NAMES } from '../face/types.js';
import type { Layer } from '../vggface.js';
import type { Fit } from '../image/decode.js';
import type { AlignMode } from '../face/align.js';
import { queueError } from './db.js';

/** The PostgreSQL schema pg-boss keeps its tables in: ours alone, so its maintenance settings are ours too. */
export const BOSS_SCHEMA = 'vggface_pgboss';
export const QUEUE_SCHEMA_VERSION = 1;
const APPLICATION = 'vggface-queue';
const SCHEMA_LOCK = 4_096_013;

const MIGRATIONS: readonly string[][] = [
  [
    `CREATE TABLE vggface_queue_meta (key text PRIMARY KEY, value text NOT NULL)`,
    `CREATE TABLE vggface_queue_runs (
       id text PRIMARY KEY,
       queue text NOT NULL UNIQUE,
       created_at timestamptz NOT NULL DEFAULT now(),
       total integer NOT NULL,
       batches integer NOT NULL,
       batch_size integer NOT NULL,
       into_target text NOT NULL,
       settings jsonb NOT NULL,
       options jsonb NOT NULL,
       model jsonb,
       detector text
     )`,
    `CREATE TABLE vggface_queue_results (
       run text NOT NULL REFERENCES vggface_queue_runs (id) ON DELETE CASCADE,
       reference text NOT NULL,
       idx integer NOT NULL,
       batch integer NOT NULL,
       status text NOT NULL CHECK (status IN ('described', 'no_face', 'failed')),
       content_sha256 text,
       error text,
       faces jsonb,
       descriptors bytea,
       identity text,
       gallery text CHECK (gallery IN ('added', 'duplicate')),
       worker text NOT NULL,
       recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
       PRIMARY KEY (run, reference)
     )`,
    `CREATE UNIQUE INDEX vggface_queue_results_order ON vggface_queue_results (run, idx)`,
    `CREATE INDEX vggface_queue_results_time ON vggface_queue_results (run, recorded_at)`,
    `INSERT INTO vggface_queue_meta (key, value) VALUES ('application', '${APPLICATION}'), ('schema_version', '1')`,
  ],
];

/** How every worker of a run describes its photos: `describe`'s flags, fixed at submit. */
export interface RunSettings {
  readonly layer: Layer;
  readonly normalize: boolean;
  readonly detector: 'yunet' | 'none';
  readonly align?: AlignMode;
  readonly margin?: number;
  readonly maxFaces?: number;
  readonly minFaceSize?: number;
  readonly minScore?: number;
  readonly fit?: Fit;
  readonly maxPixels?: number;
  /** Images per inference call. */
  readonly inferenceBatch: number;
}

/** Which model a run's descriptors come from: results of two models never mix. */
export interface ModelBinding {
  /** `<source sha256>:<preprocessing>:<precision>[:<int8 calibration sha256>]`. */
  readonly key: string;
  readonly sha256: string;
  readonly preprocessing: string;
  readonly precision: string;
  readonly calibration?: string;
  /** The weight file's name, for messages. */
  readonly name: string;
}

export interface RunOptions {
  /** Tries of a batch after the first before it is dead (pg-boss retryLimit). */
  readonly retries: number;
  /** A batch held longer than this is given to another worker (pg-boss expireInSeconds). */
  readonly batchTimeoutSeconds: number;
}

export interface Run {
  readonly id: string;
  readonly queue: string;
  readonly createdAt: Date;
  readonly total: number;
  readonly batches: number;
  readonly batchSize: number;
  readonly into: string;
  readonly settings: RunSettings;
  readonly options: RunOptions;
  readonly model: ModelBinding | null;
  readonly detector: string | null;
}

/** A batch's job data. */
export interface BatchData {
  readonly run: string;
  readonly batch: number;
  /** [submission index, reference] of each photo, and its identity for runs into a gallery. */
  readonly refs: readonly (readonly [number, string] | readonly [number, string, string])[];
}

export type ResultStatus = 'described' | 'no_face' | 'failed';

export interface PhotoResult {
  readonly idx: number;
  readonly reference: string;
  readonly status: ResultStatus;
  readonly sha256?: string;
  readonly error?: string;
  readonly faces?: readonly DetectedFace[];
  /** One per face (detection) or exactly one (--detector none); none for no_face and failed. */
  readonly descriptors: readonly Float32Array[];
  /** Runs into a gallery: who the photo shows, and whether it was added or was already there (the same content). */
  readonly identity?: string;
  readonly gallery?: 'added' | 'duplicate';
}

export const queueName = (run: string) => `vggface-run-${run}`;

export function modelKey(m: Omit<ModelBinding, 'key' | 'name'>): string {
  return [m.sha256, m.preprocessing, m.precision, ...(m.calibration ? [m.calibration] : [])].join(':');
}

export function describeBinding(m: ModelBinding): string {
  return (
    `${m.name} (sha256 ${m.sha256.slice(0, 12)}..., ${m.preprocessing} ` +
    `preprocessing, ${m.precision}${m.calibration ? `, calibration ${m.calibration.slice(0, 12)}...` : ''})`
  );
}

/** Creates or migrates the queue tables (serialised across processes by an advisory lock). */
export async function ensureSchema(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  client.on('error', () => {}); // see transaction() in db.ts
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
    const exists = await client.query(
      'SELECT 1 FROM information_schema.tables WHERE table_schema = ' +
        "current_schema() AND table_name = 'vggface_queue_meta'",
    );
    let version = 0;
    if (exists.rowCount) {
      const meta = Object.fromEntries(
        (await client.query<{ key: string; value: string }>('SELECT key, value FROM vggface_queue_meta')).rows.map(
          (r) => [r.key, r.value],
        ),
      );
      if (meta.application !== APPLICATION)
        throw queueError('wrong schema: vggface_queue_meta has no application = vggface-queue');
      version = Number(meta.schema_version);
      if (version > QUEUE_SCHEMA_VERSION)
        throw queueError(
          `queue schema version ${version} is newer than this vggface ` +
            `supports (${QUEUE_SCHEMA_VERSION}); upgrade vggface`,
        );
    }
    for (let v = version; v < QUEUE_SCHEMA_VERSION; v++) for (const sql of MIGRATIONS[v]) await client.query(sql);
    if (version > 0 && version < QUEUE_SCHEMA_VERSION)
      await client.query(`UPDATE vggface_queue_meta SET value = $1 WHERE key = 'schema_version'`, [
        String(QUEUE_SCHEMA_VERSION),
      ]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/** Whether the queue tables exist (status and export do not create them). */
export async function hasSchema(db: pg.Pool | pg.PoolClient): Promise<boolean> {
  const r = await db.query(
    'SELECT 1 FROM information_schema.tables WHERE table_schema = ' +
      "current_schema() AND table_name = 'vggface_queue_runs'",
  );
  return (r.rowCount ?? 0) > 0;
}

interface RunRow {
  id: string;
  queue: string;
  created_at: Date;
  total: number;
  batches: number;
  batch_size: number;
  into_target: string;
  settings: RunSettings;
  options: RunOptions;
  model: ModelBinding | null;
  detector: string | null;
}

const toRun = (r: RunRow): Run => ({
  id: r.id,
  queue: r.queue,
  createdAt: r.created_at,
  total: r.total,
  batches: r.batches,
  batchSize: r.batch_size,
  into: r.into_target,
  settings: r.settings,
  options: r.options,
  model: r.model,
  detector: r.detector,
});

export async function getRun(db: pg.Pool | pg.PoolClient, id: string): Promise<Run | undefined> {
  if (!(await hasSchema(db))) return undefined;
  const r = await db.query<RunRow>('SELECT * FROM vggface_queue_runs WHERE id = $1', [id]);
  return r.rows[0] ? toRun(r.rows[0]) : undefined;
}

/** The run, or an error that says it is unknown (and which runs there are). */
export async function requireRun(db: pg.Pool, id: string): Promise<Run> {
  const run = await getRun(db, id);
  if (run) return run;
  const known = (await hasSchema(db))
    ? (await db.query<{ id: string }>('SELECT id FROM vggface_queue_runs ORDER BY created_at DESC LIMIT 5')).rows.map(
        (r) => r.id,
      )
    : [];
  throw queueError(
    `unknown run ${JSON.stringify(id)}: ` +
      `${
        known.length
          ? `the latest runs are ${known.join(', ')}`
          : 'this database has no runs (submit one with vggface queue submit)'
      }`,
    { input: id },
  );
}

export async function listRuns(db: pg.Pool): Promise<Run[]> {
  if (!(await hasSchema(db))) return [];
  return (await db.query<RunRow>('SELECT * FROM vggface_queue_runs ORDER BY created_at, id')).rows.map(toRun);
}

/** Runs with batches queued, waiting for a retry or in flight, oldest first (optionally just one). */
export async function listOpenRuns(db: pg.Pool, only?: string): Promise<Run[]> {
  const r = await db.query<RunRow>(
    `SELECT r.* FROM vggface_queue_runs r
     WHERE ($1::text IS NULL OR r.id = $1)
       AND EXISTS (SELECT 1 FROM ${BOSS_SCHEMA}.job j WHERE j.name = r.queue AND j.state < 'completed')
     ORDER BY r.created_at, r.id`,
    [only ?? null],
  );
  return r.rows.map(toRun);
}

export async function insertRun(client: pg.PoolClient, run: Omit<Run, 'createdAt'>): Promise<void> {
  await client.query(
    'INSERT INTO vggface_queue_runs ' +
      `(id, queue, total, batches, batch_size, into_target, settings, options, model, detector)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [
      run.id,
      run.queue,
      run.total,
      run.batches,
      run.batchSize,
      run.into,
      run.settings,
      run.options,
      run.model,
      run.detector,
    ],
  );
}

/**
 * Binds the run to a worker's model and detector where the run has none yet, and returns what the run is bound
 * to (the caller compares): the first worker decides, atomically.
 */
export async function bindRun(
  db: pg.Pool,
  id: string,
  model: ModelBinding,
  detector: string | null,
): Promise<{ model: ModelBinding; detector: string | null }> {
  const r = await db.query<{ model: ModelBinding; detector: string | null }>(
    `UPDATE vggface_queue_runs SET model = COALESCE(model, $2::jsonb),
       detector = CASE WHEN settings->>'detector' = 'none' THEN NULL ELSE COALESCE(detector, $3) END
     WHERE id = $1 RETURNING model, detector`,
    [id, model, detector],
  );
  if (!r.rows[0]) throw queueError(`unknown run ${JSON.stringify(id)}`, { input: id });
  return r.rows[0];
}

/** The references of a batch that already have a result in the run (a retried batch skips them). */
export async function recordedReferences(db: pg.Pool, run: string, refs: readonly string[]): Promise<Set<string>> {
  if (refs.length === 0) return new Set();
  const r = await db.query<{ reference: string }>(
    'SELECT reference FROM vggface_queue_results WHERE run = $1 AND reference = ANY($2::text[])',
    [run, refs],
  );
  return new Set(r.rows.map((x) => x.reference));
}

function descriptorBytes(vs: readonly Float32Array[]): Buffer | null {
  if (vs.length === 0) return null;
  const out = Buffer.alloc(vs.reduce((s, v) => s + v.byteLength, 0));
  let at = 0;
  for (const v of vs) {
    out.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), at);
    at += v.byteLength;
  }
  return out;
}

/** Inserts a batch's results; those already there (an earlier run of the batch) are kept. Returns how many were new. */
export async function insertResults(
  client: pg.PoolClient,
  run: string,
  batch: number,
  worker: string,
  results: readonly PhotoResult[],
): Promise<number> {
  if (results.length === 0) return 0;
  const cols = 12;
  const params: unknown[] = [];
  const rows: string[] = [];
  results.forEach((r, i) => {
    const b = i * cols;
    rows.push(`(${Array.from({ length: cols }, (_, k) => `$${b + k + 1}`).join(', ')})`);
    params.push(
      run,
      r.reference,
      r.idx,
      batch,
      r.status,
      r.sha256 ?? null,
      r.error ?? null,
      r.faces ? JSON.stringify(r.faces) : null,
      descriptorBytes(r.descriptors),
      r.identity ?? null,
      r.gallery ?? null,
      worker,
    );
  });
  const res = await client.query(
    'INSERT INTO vggface_queue_results ' +
      `(run, reference, idx, batch, status, content_sha256, error, faces, descriptors, identity, gallery, worker)
     VALUES ${rows.join(', ')} ON CONFLICT (run, reference) DO NOTHING`,
    params,
  );
  return res.rowCount ?? 0;
}

/** Faces as stored (jsonb reorders keys) put back in the order describe writes them. */
function faceFromJson(f: DetectedFace): DetectedFace {
  const landmarks = Object.fromEntries(
    LANDMARK_NAMES.map((n) => [n, f.landmarks[n]]),
  ) as unknown as DetectedFace['landmarks'];
  return { box: { x: f.box.x, y: f.box.y, width: f.box.width, height: f.box.height }, score: f.score, landmarks };
}

interface ResultRow {
  idx: number;
  reference: string;
  status: ResultStatus;
  content_sha256: string | null;
  error: string | null;
  faces: DetectedFace[] | null;
  descriptors: Buffer | null;
}

/** A run's results in submission order, read in pages (a run of millions never sits in memory). */
export async function* readResults(
  db: pg.Pool,
  run: string,
  dimension: number,
  pageSize = 1000,
): AsyncGenerator<PhotoResult> {
  let after = -1;
  for (;;) {
    const r = await db.query<ResultRow>(
      `SELECT idx, reference, status, content_sha256, error, faces, descriptors FROM vggface_queue_results
       WHERE run = $1 AND idx > $2 ORDER BY idx LIMIT $3`,
      [run, after, pageSize],
    );
    for (const row of r.rows) {
      const descriptors: Float32Array[] = [];
      if (row.descriptors) {
        const all = new Float32Array(
          row.descriptors.buffer.slice(
            row.descriptors.byteOffset,
            row.descriptors.byteOffset + row.descriptors.byteLength,
          ),
        );
        for (let at = 0; at < all.length; at += dimension) descriptors.push(all.subarray(at, at + dimension));
      }
      yield {
        idx: row.idx,
        reference: row.reference,
        status: row.status,
        sha256: row.content_sha256 ?? undefined,
        error: row.error ?? undefined,
        faces: row.faces?.map(faceFromJson),
        descriptors,
      };
    }
    if (r.rows.length < pageSize) return;
    after = r.rows[r.rows.length - 1].idx;
  }
}
