/** What every gallery store (embedded SQLite, PostgreSQL) offers; the Gallery class is built on it. */
import type { Metric } from '../metrics/distance.js';
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
  /** PostgreSQL only: use the binary-quantized HNSW index, then re-rank the candidates exactly. */
  readonly approximate?: boolean;
  /** Candidates the approximate search re-ranks (default 200). */
  readonly candidates?: number;
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
  close(): Promise<void>;
}

/** The identities' names: printable, not empty, not the word search answers for no match. */
export const UNKNOWN = 'unknown';
