/** What every gallery store (embedded SQLite, PostgreSQL) offers; the Gallery class is built on it. */
import type { Metric } from '../distance/distance.js';
import type { IdentityMatch } from './descriptor-index.js';
import type { Precision } from './scorer.js';

/** Which model a gallery's descriptors come from: a gallery never mixes models. */
export interface GalleryMeta {
  readonly modelKey: string;
  readonly modelName: string;
  readonly dimension: number;
  readonly precision: Precision;
}

export interface NewFace {
  readonly identity: string;
  /** sha256 of the image's bytes: the same image is stored once. */
  readonly contentHash: string;
  /** Where the face came from (the path as given), for results. */
  readonly source: string;
  readonly descriptor: Float32Array;
}

export type AddOutcome =
  | { readonly status: 'added'; readonly id: number }
  | { readonly status: 'duplicate'; readonly identity: string; readonly source: string };

export interface IdentitySummary {
  readonly identity: string;
  readonly faces: number;
}

export interface StoreSearchOptions {
  readonly k: number;
  readonly metric: Metric;
  /**
   * Search the approximate index (a PCA projection of the descriptors: HNSW in PostgreSQL, a compact in-memory
   * index in SQLite), then re-rank its candidates by their exact distance. Built on first use if missing.
   */
  readonly approximate?: boolean;
  /** Candidates the approximate search re-ranks (default 30 in SQLite, 50 in PostgreSQL: approximate.ts). */
  readonly candidates?: number;
}

/** How the approximate index is built. */
export interface AnnIndexOptions {
  /** Dimensions the descriptors are projected to (default 256, at most 2,000). */
  readonly components?: number;
  /** Faces the projection is fitted on, drawn at random (default 20,000). */
  readonly sample?: number;
  /** Told how the build goes, for progress bars: a stage, and how far it is (done of total). */
  readonly onProgress?: (stage: 'sample' | 'fit' | 'project' | 'index', done: number, total: number) => void;
}

export interface GalleryStore {
  /** Where the gallery is, for messages (never a password). */
  readonly location: string;
  /** The gallery's model binding, or undefined for a gallery with no schema yet. */
  meta(): Promise<GalleryMeta | undefined>;
  /** Creates the schema for `meta` unless it exists; returns the meta in force. */
  initialize(meta: GalleryMeta): Promise<GalleryMeta>;
  /** The content hashes among `hashes` already stored, with their identity. */
  existing(hashes: readonly string[]): Promise<Map<string, { identity: string; source: string }>>;
  /** Adds faces in one transaction: all of them are committed, or none. */
  add(faces: readonly NewFace[]): Promise<AddOutcome[]>;
  /** Removes an identity's faces; returns how many. */
  remove(identity: string): Promise<number>;
  list(): Promise<IdentitySummary[]>;
  count(): Promise<number>;
  search(query: Float32Array, options: StoreSearchOptions): Promise<IdentityMatch[]>;
  /** Whether the approximate-search index exists. */
  hasAnnIndex(): Promise<boolean>;
  /**
   * Builds the approximate-search index unless it exists (from then on every add keeps it up to date); returns whether
   * it was built.
   */
  ensureAnnIndex(options?: AnnIndexOptions): Promise<boolean>;
  /**
   * Changes the gallery's model key from `oldKey` to `newKey` in one transaction, only while it is still `oldKey`
   * (a gallery keyed by a file sha256 before network identities, moved to the identity); true when it changed it.
   */
  rekey(oldKey: string, newKey: string): Promise<boolean>;
  close(): Promise<void>;
}

/** Whether a gallery location is a PostgreSQL URL (else a SQLite file); here, so callers need not load pg to ask. */
export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}

/** The identities' names: printable, not empty, not the word search answers for no match. */
export const UNKNOWN = 'unknown';
