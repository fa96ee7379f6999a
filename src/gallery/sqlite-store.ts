/**
 * The embedded gallery: one SQLite file (better-sqlite3, WAL journal, so readers never block the writer and a
 * killed process leaves every committed transaction and nothing else). Each add is one IMMEDIATE transaction;
 * concurrent writers queue on SQLite's lock (busy timeout) instead of failing. The same image (content hash)
 * is stored once. For search, every descriptor is loaded once into a {@link DescriptorIndex}.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { VggFaceError } from '../errors.js';
import { DescriptorIndex, type IdentityMatch } from './descriptor-index.js';
import { decodeHalf, encodeHalf } from '../util/float16.js';
import type { AddOutcome, GalleryMeta, GalleryStore, IdentitySummary, NewFace, StoreSearchOptions } from './types.js';

export const SQLITE_SCHEMA_VERSION = 1;
const APPLICATION = 'vggface-gallery';

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
];

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
    const get = (k: string) => this.db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(k) as string | undefined;
    if (get('application') !== APPLICATION) throw galleryError(this.location, 'not a vggface gallery: its meta table has no application = vggface-gallery');
    const version = Number(get('schema_version'));
    if (version > SQLITE_SCHEMA_VERSION) {
      throw galleryError(this.location, `gallery schema version ${version} is newer than this vggface supports (${SQLITE_SCHEMA_VERSION}); upgrade vggface`);
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
    const m = Object.fromEntries(rows.map((r) => [r.key, r.value]));
    return { modelKey: m.model_key, modelName: m.model_name, dimension: Number(m.dimension), precision: m.precision === 'fp16' ? 'fp16' : 'fp32' };
  }

  async initialize(meta: GalleryMeta): Promise<GalleryMeta> {
    // Checked again inside the write lock: two processes creating the same gallery at once create it once.
    const create = this.db.transaction(() => {
      const exists = this.db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'`).get();
      if (exists) return;
      this.db.exec(MIGRATIONS[0]);
      const put = this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
      put.run('application', APPLICATION);
      put.run('schema_version', String(SQLITE_SCHEMA_VERSION));
      put.run('model_key', meta.modelKey);
      put.run('model_name', meta.modelName);
      put.run('dimension', String(meta.dimension));
      put.run('precision', meta.precision);
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
    const insert = this.db.prepare('INSERT INTO faces (identity, content_hash, source, added_at, descriptor) VALUES (?, ?, ?, ?, ?) ON CONFLICT (content_hash) DO NOTHING');
    const find = this.db.prepare('SELECT identity, source FROM faces WHERE content_hash = ?');
    const now = new Date().toISOString();
    const tx = this.db.transaction((batch: readonly NewFace[]) =>
      batch.map((f): AddOutcome => {
        const stored = meta.precision === 'fp16' ? encodeHalfBytes(f.descriptor) : bytesOf(f.descriptor);
        const r = insert.run(f.identity, f.contentHash, f.source, now, stored);
        if (r.changes === 1) return { status: 'added', id: Number(r.lastInsertRowid) };
        const prev = find.get(f.contentHash) as { identity: string; source: string };
        return { status: 'duplicate', identity: prev.identity, source: prev.source };
      }),
    );
    let outcomes: AddOutcome[];
    try {
      outcomes = tx.immediate(faces);
    } catch (err) {
      throw galleryError(this.location, `cannot add faces: ${(err as Error).message}`, err);
    }
    if (this.index) {
      faces.forEach((f, i) => {
        const o = outcomes[i];
        if (o.status === 'added') this.index!.append({ id: o.id, identity: f.identity, source: f.source }, this.index!.encode(f.descriptor));
      });
    }
    return outcomes;
  }

  async remove(identity: string): Promise<number> {
    if (!(await this.meta())) return 0;
    const n = this.db.prepare('DELETE FROM faces WHERE identity = ?').run(identity).changes;
    this.index?.retain((f) => f.identity !== identity);
    return n;
  }

  async list(): Promise<IdentitySummary[]> {
    if (!(await this.meta())) return [];
    return this.db.prepare('SELECT identity, count(*) AS faces FROM faces GROUP BY identity ORDER BY identity').all() as IdentitySummary[];
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
    const bytes = meta.dimension * (meta.precision === 'fp16' ? 2 : 4);
    for (const r of rows.iterate() as Iterable<{ id: number; identity: string; source: string; descriptor: Buffer }>) {
      if (r.descriptor.byteLength !== bytes) throw galleryError(this.location, `face ${r.id}: descriptor of ${r.descriptor.byteLength} bytes, expected ${bytes}`);
      const copy = new Uint8Array(r.descriptor); // aligned copy
      index.append({ id: r.id, identity: r.identity, source: r.source }, meta.precision === 'fp16' ? new Uint16Array(copy.buffer) : new Float32Array(copy.buffer));
    }
    this.index = index;
    return index;
  }

  async search(query: Float32Array, options: StoreSearchOptions): Promise<IdentityMatch[]> {
    const index = await this.loadIndex();
    return index.search(query, options.k, options.metric);
  }

  /** A stored descriptor as float32, for checks. */
  async descriptor(id: number): Promise<Float32Array | undefined> {
    const meta = await this.meta();
    const r = this.db.prepare('SELECT descriptor FROM faces WHERE id = ?').get(id) as { descriptor: Buffer } | undefined;
    if (!r || !meta) return undefined;
    const copy = new Uint8Array(r.descriptor);
    return meta.precision === 'fp16' ? decodeHalf(new Uint16Array(copy.buffer)) : new Float32Array(copy.buffer);
  }

  async close(): Promise<void> {
    await this.index?.close();
    this.db.close();
  }
}

function bytesOf(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function encodeHalfBytes(v: Float32Array): Buffer {
  return Buffer.from(encodeHalf(v).buffer);
}
