/**
 * The embedded gallery: one SQLite file (better-sqlite3, WAL journal, so readers never block the writer and a
 * killed process leaves every committed transaction and nothing else). Each add is one IMMEDIATE transaction;
 * concurrent writers queue on SQLite's lock (busy timeout) instead of failing. The same image (content hash)
 * is stored once. For exact search, every descriptor is loaded once into a {@link DescriptorIndex}. Approximate search
 * holds only the descriptors' projections (a PCA of 256 dimensions by default: 1 GiB for a million faces instead of
 * 16 GiB) in a second index, and reads the candidates' full descriptors back from the file to re-rank them.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { VggFaceError } from '../errors.js';
import {
  annSettings,
  checkCandidates,
  exactDistance,
  fitGalleryProjection,
  needsRefit,
  newGeneration,
  rerank,
} from './approximate.js';
import { DescriptorIndex, type IdentityMatch } from './descriptor-index.js';
import { APPLICATION, metaFromRows, metaRows } from './meta.js';
import { ProjectionIndex } from './projection-index.js';
import {
  decodeProjectionRow,
  encodeProjection,
  openProjector,
  type Projection,
  type ProjectionRow,
  type Projector,
} from './projection.js';
import { decodeHalf, encodeHalf } from '../util/float16.js';
import type { Metric } from '../distance/distance.js';
import type {
  AddOutcome,
  AnnIndexOptions,
  GalleryMeta,
  GalleryStore,
  IdentitySummary,
  NewFace,
  StoreSearchOptions,
} from './types.js';

export const SQLITE_SCHEMA_VERSION = 2;
/** Faces read, projected and written per step while building the approximate index. */
const BUILD_BATCH = 4096;

/** Schema migrations: index i takes version i to i + 1. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE faces (
     id INTEGER PRIMARY KEY,
     identity TEXT NOT NULL,
     content_hash TEXT NOT NULL UNIQUE,
     source TEXT NOT NULL,
     added_at TEXT NOT NULL,
     descriptor BLOB NOT NULL
   );
   CREATE INDEX faces_identity ON faces (identity);`,
  // The approximate index: the projection (one row) and each face's projection, in a table of their own so that
  // loading them never reads the 16 KiB descriptors.
  `CREATE TABLE projection (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     generation TEXT NOT NULL,
     dim INTEGER NOT NULL,
     components INTEGER NOT NULL,
     fitted_on INTEGER NOT NULL,
     total_variance REAL NOT NULL,
     mean BLOB NOT NULL,
     basis BLOB NOT NULL,
     variances BLOB NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE TABLE projected (face_id INTEGER PRIMARY KEY, identity TEXT NOT NULL, proj BLOB NOT NULL);
   CREATE INDEX projected_identity ON projected (identity);`,
];

/** A write that found the projection replaced since it projected its faces: projected again, then written. */
class ProjectionChanged extends Error {}

function galleryError(location: string, problem: string, cause?: unknown): VggFaceError {
  return new VggFaceError('E_GALLERY', `${location}: ${problem}`, { input: location, cause });
}

export interface SqliteStoreOptions {
  /** Create the file when missing (adding does; searching, listing and removing do not). */
  readonly create: boolean;
  readonly threads?: number;
}

export class SqliteStore implements GalleryStore {
  private index: DescriptorIndex | undefined;
  /** The projection in use (by generation), and the in-memory index of projections once a search loaded it. */
  private approx: { generation: string; projector: Projector; index?: ProjectionIndex } | undefined;
  /** Whether this process has checked the approximate index exists and is fitted on enough faces. */
  private annChecked = false;

  private constructor(
    private readonly db: Database.Database,
    readonly location: string,
    private readonly threads?: number,
  ) {}

  static async open(path: string, options: SqliteStoreOptions): Promise<SqliteStore> {
    if (!existsSync(path)) {
      if (!options.create) throw galleryError(path, 'no gallery here: add faces first with "vggface gallery add"');
      await mkdir(dirname(path), { recursive: true }).catch((err: unknown) => {
        throw galleryError(path, `cannot create the folder: ${(err as Error).message}`, err);
      });
    }
    let db: Database.Database;
    try {
      db = new Database(path, { fileMustExist: !options.create, timeout: 30_000 });
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
    } catch (err) {
      throw galleryError(path, `cannot open as a SQLite gallery: ${(err as Error).message}`, err);
    }
    const store = new SqliteStore(db, path, options.threads);
    try {
      store.checkSchema();
    } catch (err) {
      db.close();
      throw err;
    }
    return store;
  }

  /** A database with tables but not ours, or ours from a newer version, is refused with a clear message. */
  private checkSchema(): void {
    const tables = this.db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all() as string[];
    if (tables.length === 0) return;
    if (!tables.includes('meta') || !tables.includes('faces')) {
      throw galleryError(this.location, `not a vggface gallery: a SQLite database with tables ${tables.join(', ')}`);
    }
    const get = (k: string) =>
      this.db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(k) as string | undefined;
    if (get('application') !== APPLICATION)
      throw galleryError(this.location, 'not a vggface gallery: its meta table has no application = vggface-gallery');
    const version = Number(get('schema_version'));
    if (version > SQLITE_SCHEMA_VERSION) {
      throw galleryError(
        this.location,
        `gallery schema version ${version} is newer than this vggface ` +
          `supports (${SQLITE_SCHEMA_VERSION}); upgrade vggface`,
      );
    }
    if (!(version >= 1)) throw galleryError(this.location, `wrong schema: schema_version "${get('schema_version')}"`);
    const columns = (this.db.prepare(`PRAGMA table_info(faces)`).all() as { name: string }[]).map((c) => c.name);
    for (const c of ['id', 'identity', 'content_hash', 'source', 'descriptor']) {
      if (!columns.includes(c)) throw galleryError(this.location, `wrong schema: table faces has no column ${c}`);
    }
    if (version < SQLITE_SCHEMA_VERSION) this.migrate(version);
  }

  private migrate(from: number): void {
    const run = this.db.transaction(() => {
      for (let v = from; v < SQLITE_SCHEMA_VERSION; v++) this.db.exec(MIGRATIONS[v]);
      this.db.prepare(`UPDATE meta SET value = ? WHERE key = 'schema_version'`).run(String(SQLITE_SCHEMA_VERSION));
    });
    run.immediate();
  }

  async meta(): Promise<GalleryMeta | undefined> {
    const hasMeta = this.db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'`).get();
    if (!hasMeta) return undefined;
    const rows = this.db.prepare('SELECT key, value FROM meta').all() as { key: string; value: string }[];
    return metaFromRows(Object.fromEntries(rows.map((r) => [r.key, r.value])));
  }

  async initialize(meta: GalleryMeta): Promise<GalleryMeta> {
    // Checked again inside the write lock: two processes creating the same gallery at once create it once.
    const create = this.db.transaction(() => {
      const exists = this.db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'`).get();
      if (exists) return;
      for (const m of MIGRATIONS) this.db.exec(m);
      const put = this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
      for (const [key, value] of metaRows(meta, SQLITE_SCHEMA_VERSION)) put.run(key, value);
    });
    try {
      create.immediate();
    } catch (err) {
      throw galleryError(this.location, `cannot create the gallery: ${(err as Error).message}`, err);
    }
    return (await this.meta())!;
  }

  async existing(hashes: readonly string[]): Promise<Map<string, { identity: string; source: string }>> {
    const out = new Map<string, { identity: string; source: string }>();
    if (!(await this.meta())) return out;
    const q = this.db.prepare('SELECT identity, source FROM faces WHERE content_hash = ?');
    for (const h of hashes) {
      const r = q.get(h) as { identity: string; source: string } | undefined;
      if (r) out.set(h, r);
    }
    return out;
  }

  async add(faces: readonly NewFace[]): Promise<AddOutcome[]> {
    const meta = (await this.meta())!;
    const insert = this.db.prepare(
      'INSERT INTO faces (identity, content_hash, source, added_at, descriptor) ' +
        'VALUES (?, ?, ?, ?, ?) ON CONFLICT (content_hash) DO NOTHING',
    );
    const insertProjected = this.db.prepare(
      'INSERT OR REPLACE INTO projected (face_id, identity, proj) VALUES (?, ?, ?)',
    );
    const find = this.db.prepare('SELECT identity, source FROM faces WHERE content_hash = ?');
    const now = new Date().toISOString();
    // With an approximate index, each new face is projected (before the transaction: ONNX Runtime is asynchronous)
    // and stored with its projection; the transaction checks the projection is still the one used.
    for (let attempt = 1; ; attempt++) {
      const approx = await this.currentProjector();
      const projected =
        approx && faces.length > 0
          ? await approx.projector.project(
              concatRows(
                faces.map((f) => f.descriptor),
                meta.dimension,
              ),
              faces.length,
            )
          : undefined;
      const k = approx?.projector.projection.components ?? 0;
      const tx = this.db.transaction((batch: readonly NewFace[]) => {
        if (this.generationNow() !== approx?.generation) throw new ProjectionChanged();
        return batch.map((f, i): AddOutcome => {
          const stored = meta.precision === 'fp16' ? encodeHalfBytes(f.descriptor) : bytesOf(f.descriptor);
          const r = insert.run(f.identity, f.contentHash, f.source, now, stored);
          if (r.changes === 1) {
            const id = Number(r.lastInsertRowid);
            if (projected) insertProjected.run(id, f.identity, bytesOf(projected.subarray(i * k, (i + 1) * k)));
            return { status: 'added', id };
          }
          const prev = find.get(f.contentHash) as { identity: string; source: string };
          return { status: 'duplicate', identity: prev.identity, source: prev.source };
        });
      });
      let outcomes: AddOutcome[];
      try {
        outcomes = tx.immediate(faces);
      } catch (err) {
        if (err instanceof ProjectionChanged && attempt < 3) continue;
        throw galleryError(this.location, `cannot add faces: ${(err as Error).message}`, err);
      }
      faces.forEach((f, i) => {
        const o = outcomes[i];
        if (o.status !== 'added') return;
        this.index?.append({ id: o.id, identity: f.identity, source: f.source }, this.index.encode(f.descriptor));
        if (projected)
          approx!.index?.append({ id: o.id, identity: f.identity, source: '' }, projected.slice(i * k, (i + 1) * k));
      });
      return outcomes;
    }
  }

  private generationNow(): string | undefined {
    if (!this.hasTable('projection')) return undefined;
    return this.db.prepare('SELECT generation FROM projection WHERE id = 1').pluck().get() as string | undefined;
  }

  private hasTable(name: string): boolean {
    return this.db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(name) !== undefined;
  }

  /** The stored projection's projector (opened once per generation), or undefined without an approximate index. */
  private async currentProjector(): Promise<
    { generation: string; projector: Projector; index?: ProjectionIndex } | undefined
  > {
    const generation = this.generationNow();
    if (generation === undefined) return undefined;
    if (this.approx?.generation === generation) return this.approx;
    const r = this.db.prepare('SELECT * FROM projection WHERE id = 1').get() as ProjectionRow;
    let projection: Projection;
    try {
      projection = decodeProjectionRow(r);
    } catch (err) {
      throw galleryError(this.location, `the approximate index is damaged: ${(err as Error).message}`, err);
    }
    await this.closeApprox();
    this.approx = { generation, projector: await openProjector(projection, this.threads) };
    return this.approx;
  }

  private async closeApprox(): Promise<void> {
    const a = this.approx;
    this.approx = undefined;
    await a?.index?.close();
    await a?.projector.close();
  }

  async hasAnnIndex(): Promise<boolean> {
    return (await this.meta()) !== undefined && this.generationNow() !== undefined;
  }

  /**
   * Fits the projection on a random sample of the faces, projects every face, and stores both; from then on every
   * add stores its faces' projections too. Faces another process adds meanwhile are projected after the commit.
   */
  async ensureAnnIndex(options: AnnIndexOptions = {}): Promise<boolean> {
    const meta = await this.meta();
    if (!meta) throw galleryError(this.location, 'the gallery is empty: add faces first with "vggface gallery add"');
    const { components, sample } = annSettings(this.location, meta.dimension, options);
    const fitted = this.hasTable('projection')
      ? (this.db.prepare('SELECT fitted_on FROM projection WHERE id = 1').pluck().get() as number | undefined)
      : undefined;
    if (fitted !== undefined && !needsRefit(fitted, await this.count(), sample)) return false;
    const ids = this.db.prepare('SELECT id FROM faces ORDER BY random() LIMIT ?').pluck().all(sample) as number[];
    // Fewer than 2 faces: nothing to fit a projection on, and approximate search is exact until there are more.
    if (ids.length < 2) return false;
    const rows = new Float32Array(ids.length * meta.dimension);
    const one = this.db.prepare('SELECT descriptor FROM faces WHERE id = ?').pluck();
    ids.forEach((id, i) => {
      rows.set(this.decodeDescriptor(meta, one.get(id) as Buffer, id), i * meta.dimension);
      if (i % 1024 === 0) options.onProgress?.('sample', i, ids.length);
    });
    options.onProgress?.('fit', 0, 1);
    const projection = await fitGalleryProjection(rows, ids.length, meta.dimension, components, this.threads);
    options.onProgress?.('fit', 1, 1);
    const projector = await openProjector(projection, this.threads);
    try {
      const generation = newGeneration();
      const stored = encodeProjection(projection);
      const total = (await this.count()) || 1;
      // Project every face in batches (reads), then write the projection and all projections in one transaction.
      const parts: { ids: number[]; identities: string[]; proj: Float32Array }[] = [];
      let done = 0;
      for (let after = -1; ; ) {
        const batch = this.db
          .prepare('SELECT id, identity, descriptor FROM faces WHERE id > ? ORDER BY id LIMIT ?')
          .all(after, BUILD_BATCH) as { id: number; identity: string; descriptor: Buffer }[];
        if (batch.length === 0) break;
        const x = new Float32Array(batch.length * meta.dimension);
        batch.forEach((r, i) => x.set(this.decodeDescriptor(meta, r.descriptor, r.id), i * meta.dimension));
        parts.push({
          ids: batch.map((r) => r.id),
          identities: batch.map((r) => r.identity),
          proj: await projector.project(x, batch.length),
        });
        after = batch[batch.length - 1].id;
        done += batch.length;
        options.onProgress?.('project', done, total);
      }
      const k = projection.components;
      const write = this.db.transaction(() => {
        const now = this.hasTable('projection')
          ? (this.db.prepare('SELECT fitted_on FROM projection WHERE id = 1').pluck().get() as number | undefined)
          : undefined;
        if (now !== fitted) return false; // another process built it first
        this.db.exec('DELETE FROM projection; DELETE FROM projected');
        this.db
          .prepare(
            'INSERT INTO projection (id, generation, dim, components, fitted_on, total_variance, mean, ' +
              'basis, variances, created_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
          )
          .run(
            generation,
            projection.dim,
            k,
            projection.fittedOn,
            projection.totalVariance,
            stored.mean,
            stored.basis,
            stored.variances,
            new Date().toISOString(),
          );
        const put = this.db.prepare('INSERT OR REPLACE INTO projected (face_id, identity, proj) VALUES (?, ?, ?)');
        for (const p of parts)
          p.ids.forEach((id, i) => put.run(id, p.identities[i], bytesOf(p.proj.subarray(i * k, (i + 1) * k))));
        // Faces removed while projecting: their projections go too.
        this.db.exec('DELETE FROM projected WHERE face_id NOT IN (SELECT id FROM faces)');
        return true;
      });
      let built: boolean;
      try {
        built = write.immediate();
      } catch (err) {
        throw galleryError(this.location, `cannot store the approximate index: ${(err as Error).message}`, err);
      }
      if (!built) return false;
      options.onProgress?.('index', 1, 1);
      // Faces added by other processes before the commit were stored without a projection: project them now.
      const missing = this.db
        .prepare(
          'SELECT id, identity, descriptor FROM faces WHERE id NOT IN (SELECT face_id FROM projected) ORDER BY id',
        )
        .all() as { id: number; identity: string; descriptor: Buffer }[];
      if (missing.length > 0) {
        const x = new Float32Array(missing.length * meta.dimension);
        missing.forEach((r, i) => x.set(this.decodeDescriptor(meta, r.descriptor, r.id), i * meta.dimension));
        const proj = await projector.project(x, missing.length);
        const put = this.db.prepare(
          'INSERT OR IGNORE INTO projected (face_id, identity, proj) SELECT id, identity, ? FROM faces WHERE id = ?',
        );
        this.db
          .transaction(() => missing.forEach((r, i) => put.run(bytesOf(proj.subarray(i * k, (i + 1) * k)), r.id)))
          .immediate();
      }
      return true;
    } finally {
      await projector.close();
    }
  }

  private checkDescriptorSize(meta: GalleryMeta, b: Buffer, id: number): void {
    const bytes = meta.dimension * (meta.precision === 'fp16' ? 2 : 4);
    if (b.byteLength !== bytes)
      throw galleryError(this.location, `face ${id}: descriptor of ${b.byteLength} bytes, expected ${bytes}`);
  }

  /** A stored descriptor as float32, its size checked. */
  private decodeDescriptor(meta: GalleryMeta, b: Buffer, id: number): Float32Array {
    this.checkDescriptorSize(meta, b, id);
    const copy = new Uint8Array(b);
    return meta.precision === 'fp16' ? decodeHalf(new Uint16Array(copy.buffer)) : new Float32Array(copy.buffer);
  }

  /** The in-memory index of every face's projection (loaded once; adds keep it up to date). */
  private async loadApproxIndex(): Promise<{ projector: Projector; index: ProjectionIndex }> {
    const approx = await this.currentProjector();
    if (!approx) throw galleryError(this.location, 'the gallery has no approximate index');
    if (approx.index) return { projector: approx.projector, index: approx.index };
    const k = approx.projector.projection.components;
    const index = new ProjectionIndex(k, this.threads);
    for (const r of this.db
      .prepare('SELECT face_id, identity, proj FROM projected ORDER BY face_id')
      .iterate() as Iterable<{ face_id: number; identity: string; proj: Buffer }>) {
      if (r.proj.byteLength !== k * 4)
        throw galleryError(
          this.location,
          `face ${r.face_id}: projection of ${r.proj.byteLength} bytes, expected ${k * 4}`,
        );
      index.append(
        { id: r.face_id, identity: r.identity, source: '' },
        new Float32Array(new Uint8Array(r.proj).buffer),
      );
    }
    approx.index = index;
    return { projector: approx.projector, index };
  }

  async remove(identity: string): Promise<number> {
    if (!(await this.meta())) return 0;
    const n = this.db
      .transaction(() => {
        if (this.hasTable('projected')) this.db.prepare('DELETE FROM projected WHERE identity = ?').run(identity);
        return this.db.prepare('DELETE FROM faces WHERE identity = ?').run(identity).changes;
      })
      .immediate();
    this.index?.retain((f) => f.identity !== identity);
    this.approx?.index?.retain((f) => f.identity !== identity);
    return n;
  }

  async list(): Promise<IdentitySummary[]> {
    if (!(await this.meta())) return [];
    return this.db
      .prepare('SELECT identity, count(*) AS faces FROM faces GROUP BY identity ORDER BY identity')
      .all() as IdentitySummary[];
  }

  async count(): Promise<number> {
    if (!(await this.meta())) return 0;
    return this.db.prepare('SELECT count(*) FROM faces').pluck().get() as number;
  }

  /** Loads every descriptor into memory (once), streaming rows so only one copy exists. */
  async loadIndex(): Promise<DescriptorIndex> {
    if (this.index) return this.index;
    const meta = await this.meta();
    if (!meta) throw galleryError(this.location, 'the gallery is empty: add faces first with "vggface gallery add"');
    const index = new DescriptorIndex(meta.dimension, meta.precision, this.threads);
    const rows = this.db.prepare('SELECT id, identity, source, descriptor FROM faces ORDER BY id');
    for (const r of rows.iterate() as Iterable<{ id: number; identity: string; source: string; descriptor: Buffer }>) {
      this.checkDescriptorSize(meta, r.descriptor, r.id);
      const copy = new Uint8Array(r.descriptor); // aligned copy, kept in its stored precision
      index.append(
        { id: r.id, identity: r.identity, source: r.source },
        meta.precision === 'fp16' ? new Uint16Array(copy.buffer) : new Float32Array(copy.buffer),
      );
    }
    this.index = index;
    return index;
  }

  async search(query: Float32Array, options: StoreSearchOptions): Promise<IdentityMatch[]> {
    if (!options.approximate) {
      const index = await this.loadIndex();
      return index.search(query, options.k, options.metric);
    }
    const candidates = checkCandidates(this.location, options.candidates, 'sqlite');
    const meta = await this.meta();
    if (!meta) throw galleryError(this.location, 'the gallery is empty: add faces first with "vggface gallery add"');
    if (!this.annChecked) {
      await this.ensureAnnIndex();
      this.annChecked = true;
    }
    if (this.generationNow() === undefined) return (await this.loadIndex()).search(query, options.k, options.metric);
    return rerank(query, await this.approximateCandidates(meta, query, candidates), options.k, options.metric);
  }

  /** The `count` faces whose projections are nearest the query's, with their full descriptors (for re-ranking). */
  private async approximateCandidates(
    meta: GalleryMeta,
    query: Float32Array,
    count: number,
  ): Promise<{ id: number; identity: string; source: string; descriptor: Float32Array }[]> {
    const { projector, index } = await this.loadApproxIndex();
    const near = await index.nearestRows(await projector.project(query, 1), count);
    if (near.length === 0) return [];
    const rows = this.db
      .prepare('SELECT id, identity, source, descriptor FROM faces WHERE id IN (SELECT value FROM json_each(?))')
      .all(JSON.stringify(near.map((f) => f.id))) as {
      id: number;
      identity: string;
      source: string;
      descriptor: Buffer;
    }[];
    return rows.map((r) => ({
      id: r.id,
      identity: r.identity,
      source: r.source,
      descriptor: this.decodeDescriptor(meta, r.descriptor, r.id),
    }));
  }

  /**
   * Nearest faces (not grouped by identity), as PostgresStore.nearestFaces: approximate (the projection's candidates
   * re-ranked exactly), or exact (every stored descriptor compared in float64: a check, not a fast path).
   */
  async nearestFaces(
    query: Float32Array,
    options: { k: number; metric: Metric; approximate?: boolean; candidates?: number },
  ): Promise<{ id: number; identity: string; source: string; distance: number }[]> {
    const meta = await this.meta();
    if (!meta) throw galleryError(this.location, 'the gallery is empty: add faces first with "vggface gallery add"');
    const found: { id: number; identity: string; source: string; distance: number }[] = [];
    const add = (r: { id: number; identity: string; source: string; descriptor: Float32Array }) =>
      found.push({
        id: r.id,
        identity: r.identity,
        source: r.source,
        distance: exactDistance(query, r.descriptor, options.metric),
      });
    if (options.approximate && (await this.hasAnnIndex())) {
      for (const r of await this.approximateCandidates(
        meta,
        query,
        checkCandidates(this.location, options.candidates, 'sqlite'),
      ))
        add(r);
    } else {
      for (const r of this.db.prepare('SELECT id, identity, source, descriptor FROM faces').iterate() as Iterable<{
        id: number;
        identity: string;
        source: string;
        descriptor: Buffer;
      }>) {
        add({ ...r, descriptor: this.decodeDescriptor(meta, r.descriptor, r.id) });
      }
    }
    return found.sort((a, b) => a.distance - b.distance || a.id - b.id).slice(0, options.k);
  }

  /** A stored descriptor as float32, for checks. */
  async descriptor(id: number): Promise<Float32Array | undefined> {
    const meta = await this.meta();
    const r = this.db.prepare('SELECT descriptor FROM faces WHERE id = ?').get(id) as
      | { descriptor: Buffer }
      | undefined;
    if (!r || !meta) return undefined;
    const copy = new Uint8Array(r.descriptor);
    return meta.precision === 'fp16' ? decodeHalf(new Uint16Array(copy.buffer)) : new Float32Array(copy.buffer);
  }

  async rekey(oldKey: string, newKey: string): Promise<boolean> {
    if (!(await this.meta())) return false;
    // The WHERE on the old value: another process that moved (or rebound) the key first is left as it is.
    const update = this.db.prepare(`UPDATE meta SET value = ? WHERE key = 'model_key' AND value = ?`);
    const tx = this.db.transaction(() => update.run(newKey, oldKey).changes === 1);
    try {
      return tx.immediate();
    } catch (err) {
      throw galleryError(this.location, `cannot change the model key to ${newKey}: ${(err as Error).message}`, err);
    }
  }

  async close(): Promise<void> {
    await this.index?.close();
    await this.closeApprox();
    this.db.close();
  }
}

function concatRows(rows: readonly Float32Array[], dim: number): Float32Array {
  const out = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => out.set(r, i * dim));
  return out;
}

function bytesOf(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function encodeHalfBytes(v: Float32Array): Buffer {
  return Buffer.from(encodeHalf(v).buffer);
}
