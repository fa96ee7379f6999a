/**
 * A gallery of known faces bound to one model: add images under an identity, search an image for the best
 * matching identities (each by the smallest distance over its faces; "unknown" when none is under the threshold),
 * list, remove. Stored in one SQLite file by default, or in PostgreSQL + pgvector for a `postgres://` location.
 *
 * ```ts
 * const model = await VggFace.load({ weights });
 * const gallery = await Gallery.open(model, { db: 'faces.db' });
 * await gallery.add('alice', ['alice1.jpg', 'alice2.jpg']);
 * const result = await gallery.search('who.jpg', { k: 5, threshold: 0.3 });
 * ```
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileError, invalidParameterError, VggFaceError } from '../errors.js';
import { inputLabel, isRawImage, type ImageInput } from '../image/decode.js';
import { DEFAULT_METRIC, METRICS, type Metric } from '../distance/distance.js';
import { sha256 } from '../util/hash.js';
import { envValue } from '../util/env.js';
import * as check from '../validate.js';
import type { DescribePhotosOptions, VggFace } from '../vggface.js';
import { isModelKey, modelIdentity, type ModelIdentity } from '../model/identity.js';
import type { IdentityMatch } from './descriptor-index.js';
import type { PostgresOpenOptions } from './postgres-store.js';
import { PRECISIONS, type Precision } from './scorer.js';
import { isPostgresUrl, UNKNOWN, type GalleryMeta, type GalleryStore, type IdentitySummary } from './types.js';

/** $VGGFACE_GALLERY, else $XDG_DATA_HOME/vggface/gallery.db, else ~/.local/share/vggface/gallery.db. */
export function defaultGalleryPath(env: NodeJS.ProcessEnv = process.env): string {
  const gallery = envValue('gallery', env);
  if (gallery) return gallery;
  return join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'vggface', 'gallery.db');
}

export interface GalleryOpenOptions {
  /** A SQLite file path, or a postgres:// URL. Default: {@link defaultGalleryPath}. */
  readonly db?: string;
  /**
   * Storage of a new gallery's descriptors: fp32 (default) or fp16 (half the memory). An existing gallery keeps its
   * own.
   */
  readonly precision?: Precision;
  /** Create the gallery when it does not exist (default false: searching a missing gallery is an error). */
  readonly create?: boolean;
  /** ONNX Runtime threads for the embedded search. */
  readonly threads?: number;
  /** PostgreSQL: timeouts, schema, the approximate index, reconnecting (see {@link PostgresOpenOptions}). */
  readonly postgres?: PostgresOpenOptions;
}

export interface AddedImage {
  readonly index: number;
  readonly label: string;
  readonly status: 'added' | 'duplicate' | 'failed';
  /** For duplicates: the identity the image is stored under. */
  readonly identity?: string;
  readonly error?: VggFaceError;
}

export interface GallerySearchOptions {
  /** Identities to return (default 5). */
  readonly k?: number;
  readonly metric?: Metric;
  /** Same person when distance <= threshold. */
  readonly threshold: number;
  /**
   * Approximate search: candidates from the gallery's projection index, re-ranked exactly (see {@link
   * StoreSearchOptions}).
   */
  readonly approximate?: boolean;
  readonly candidates?: number;
}

export interface GallerySearchResult {
  /** The best identity under the threshold, or "unknown". */
  readonly identity: string;
  /**
   * The distance to the nearest stored face (the first match's), whether or not it is under the threshold. Always
   * a number: searching an empty gallery is an error (E_GALLERY), never a result without a distance.
   */
  readonly distance: number;
  readonly threshold: number;
  readonly metric: Metric;
  /** The best k identities (at least one), closest first, each with the face that matched best. */
  readonly matches: readonly (IdentityMatch & { readonly verified: boolean })[];
}

export function checkIdentity(identity: unknown): string {
  if (
    typeof identity !== 'string' ||
    identity.trim() === '' ||
    identity.length > 256 ||
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses
    /[\u0000-\u001f\u007f]/.test(identity)
  ) {
    throw invalidParameterError('identity', 'a name of 1 to 256 printable characters', identity);
  }
  if (identity === UNKNOWN)
    throw invalidParameterError(
      'identity',
      `a name other than "${UNKNOWN}" (search answers it when nothing matches)`,
      identity,
    );
  return identity;
}

/** sha256 of what identifies an image: a file's bytes, a buffer, or raw pixels with their size. */
export async function contentHash(input: ImageInput, label: string): Promise<string> {
  if (typeof input === 'string') {
    try {
      return sha256(await readFile(input));
    } catch (err) {
      throw fileError(label, err);
    }
  }
  if (isRawImage(input)) return sha256(Buffer.concat([Buffer.from(`raw:${input.width}x${input.height}:`), input.data]));
  return sha256(input);
}

/** Opens the store behind a location (SQLite file or postgres:// URL) without a model: enough to list and remove. */
export async function openGalleryStore(
  db: string,
  options: { create?: boolean; threads?: number; postgres?: PostgresOpenOptions } = {},
): Promise<GalleryStore> {
  check.nonEmptyString('db', db);
  // The stores load here, with their native modules (pg, better-sqlite3): importing vggface loads neither.
  if (isPostgresUrl(db)) {
    const { PostgresStore } = await import('./postgres-store.js');
    return PostgresStore.open(db, options.postgres);
  }
  const { SqliteStore } = await import('./sqlite-store.js');
  return SqliteStore.open(db, { create: options.create ?? false, threads: options.threads });
}

/** Removes an identity from a store; an identity the gallery does not hold is an error. */
export async function removeIdentity(store: GalleryStore, identity: string): Promise<number> {
  checkIdentity(identity);
  const n = await store.remove(identity);
  if (n === 0)
    throw new VggFaceError('E_GALLERY', `${store.location}: no identity "${identity}" in the gallery`, {
      input: identity,
    });
  return n;
}

/**
 * What a gallery needs of a model to bind to it: its identity and descriptor size. A loaded {@link VggFace} is
 * one; a process that describes images elsewhere (the server's inference workers) passes just these, and then
 * adds and searches with descriptors ({@link Gallery.addDescriptors}, {@link Gallery.searchDescriptor}).
 */
export type GalleryModel = Pick<VggFace, 'info' | 'modelPath' | 'dimension'>;

/** An image already described, for {@link Gallery.addDescriptors}. */
export interface DescribedImage {
  /** How results and search matches name it (a path, a file name). */
  readonly label: string;
  /** sha256 of the image's bytes: the same image is stored once. */
  readonly contentHash: string;
  readonly descriptor: Float32Array;
}

export class Gallery<M extends GalleryModel = VggFace> {
  private constructor(
    readonly store: GalleryStore,
    private readonly model: M,
    private readonly identity: ModelIdentity,
    private readonly precision: Precision,
  ) {}

  static async open<M extends GalleryModel = VggFace>(model: M, options: GalleryOpenOptions = {}): Promise<Gallery<M>> {
    if (!check.isPlainObject(options)) throw invalidParameterError('options', 'an object', options);
    const db = options.db ?? defaultGalleryPath();
    check.nonEmptyString('db', db);
    const precision =
      options.precision === undefined ? 'fp32' : check.oneOf('precision', options.precision, PRECISIONS);
    const store = await openGalleryStore(db, options);
    try {
      const identity = await modelIdentity(model);
      const gallery = new Gallery<M>(store, model, identity, precision);
      const meta = await store.meta();
      if (meta) gallery.checkModel(meta);
      return gallery;
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  private checkModel(meta: GalleryMeta): void {
    // A gallery filled before network identities is keyed by the source file's sha256: still the same model.
    if (!isModelKey(this.identity, meta.modelKey) || meta.dimension !== this.model.dimension()) {
      throw new VggFaceError(
        'E_GALLERY',
        `${this.store.location}: this gallery holds descriptors of model ${meta.modelName} ` +
          `(${meta.modelKey.slice(0, 12)}..., ${meta.dimension}-d); ` +
          `the loaded model is ${this.identity.name} ` +
          `(${this.identity.key.slice(0, 12)}..., ${this.model.dimension()}-d): descriptors of ` +
          'different models cannot be compared',
        { input: this.store.location },
      );
    }
  }

  /**
   * Describes `images` and stores them under `identity`, one transaction per inference batch: a crash keeps every
   * committed batch. An image already stored (same content) is reported as a duplicate, not stored again.
   */
  async add(
    this: Gallery<VggFace>,
    identity: string,
    images: readonly ImageInput[],
    options: DescribePhotosOptions = {},
  ): Promise<AddedImage[]> {
    checkIdentity(identity);
    await this.bind();
    const results: AddedImage[] = new Array(images.length);
    const labels = images.map((img, i) => inputLabel(img, i));
    const hashes: (string | undefined)[] = [];
    for (let i = 0; i < images.length; i++) {
      try {
        hashes.push(await contentHash(images[i], labels[i]));
      } catch (err) {
        hashes.push(undefined);
        results[i] = { index: i, label: labels[i], status: 'failed', error: err as VggFaceError };
      }
    }
    // Images already stored, or repeated in this call, are not described at all.
    const known = await this.store.existing(hashes.filter((h): h is string => h !== undefined));
    const todo: number[] = [];
    const firstOf = new Map<string, number>();
    hashes.forEach((h, i) => {
      if (h === undefined) return;
      const prev = known.get(h);
      if (prev) results[i] = { index: i, label: labels[i], status: 'duplicate', identity: prev.identity };
      else if (firstOf.has(h)) results[i] = { index: i, label: labels[i], status: 'duplicate', identity };
      else {
        firstOf.set(h, i);
        todo.push(i);
      }
    });
    const batchSize = options.batchSize ?? 8;
    for (let s = 0; s < todo.length; s += batchSize) {
      const batch = todo.slice(s, s + batchSize);
      const described: { i: number; descriptor: Float32Array }[] = [];
      for await (const r of this.model.describePhotos(
        batch.map((i) => images[i]),
        { ...options, batchSize, onProgress: undefined },
      )) {
        const i = batch[r.index];
        if (r.error)
          results[i] = {
            index: i,
            label: labels[i],
            status: 'failed',
            error: new VggFaceError(r.error.code, r.error.message.replace(/^input #\d+/, labels[i]), {
              input: labels[i],
              cause: r.error,
            }),
          };
        else described.push({ i, descriptor: r.descriptor });
      }
      const outcomes = await this.store.add(
        described.map((d) => ({ identity, contentHash: hashes[d.i]!, source: labels[d.i], descriptor: d.descriptor })),
      );
      described.forEach((d, k) => {
        const o = outcomes[k];
        results[d.i] =
          o.status === 'added'
            ? { index: d.i, label: labels[d.i], status: 'added' }
            : { index: d.i, label: labels[d.i], status: 'duplicate', identity: o.identity };
      });
      options.onProgress?.(Math.min(s + batchSize, todo.length), todo.length);
    }
    return results;
  }

  /**
   * The gallery's model binding, created with the first add. A gallery keyed by the file sha256 (before network
   * identities) is moved to the identity here, on writing only, so that the same network from any layout opens it.
   */
  private async bind(): Promise<void> {
    let meta =
      (await this.store.meta()) ??
      (await this.store.initialize({
        modelKey: this.identity.key,
        modelName: this.identity.name,
        dimension: this.model.dimension(),
        precision: this.precision,
      }));
    this.checkModel(meta);
    if (meta.modelKey !== this.identity.key) {
      // Read back either way: when rekey finds the key no longer the old one, another process changed it first.
      await this.store.rekey(meta.modelKey, this.identity.key);
      meta = (await this.store.meta())!;
      this.checkModel(meta);
    }
  }

  /**
   * Stores descriptors computed elsewhere under `identity`, in one transaction. An image already stored (same
   * content hash), or repeated in `images`, is reported as a duplicate with the identity it is stored under.
   */
  async addDescriptors(identity: string, images: readonly DescribedImage[]): Promise<AddedImage[]> {
    checkIdentity(identity);
    for (const [i, img] of images.entries()) {
      if (!(img.descriptor instanceof Float32Array) || img.descriptor.length !== this.model.dimension()) {
        throw invalidParameterError(
          `images[${i}].descriptor`,
          `a Float32Array of ${this.model.dimension()} values`,
          img.descriptor,
        );
      }
    }
    await this.bind();
    const outcomes = await this.store.add(
      images.map((img) => ({ identity, contentHash: img.contentHash, source: img.label, descriptor: img.descriptor })),
    );
    return outcomes.map((o, i) =>
      o.status === 'added'
        ? { index: i, label: images[i].label, status: 'added' }
        : { index: i, label: images[i].label, status: 'duplicate', identity: o.identity },
    );
  }

  /**
   * Searches with an image: its largest face, or with `faces: 'none'` the image as given (the same handling the
   * gallery's faces were added with, for results that mean anything).
   */
  async search(
    this: Gallery<VggFace>,
    image: ImageInput,
    options: GallerySearchOptions & DescribePhotosOptions,
  ): Promise<GallerySearchResult> {
    const { k, metric, threshold, approximate, candidates, ...describe } = options;
    for await (const r of this.model.describePhotos([image], describe)) {
      if (r.error) throw r.error;
      return this.searchDescriptor(r.descriptor, { k, metric, threshold, approximate, candidates });
    }
    throw new VggFaceError('E_INTERNAL', 'search: no result for the image');
  }

  /** Searches with a descriptor of this gallery's model. */
  async searchDescriptor(descriptor: Float32Array, options: GallerySearchOptions): Promise<GallerySearchResult> {
    if (!check.isPlainObject(options)) throw invalidParameterError('options', 'an object', options);
    const k = options.k === undefined ? 5 : check.integer('k', options.k, 1, 1000);
    const metric = options.metric === undefined ? DEFAULT_METRIC : check.oneOf('metric', options.metric, METRICS);
    const threshold = check.number('threshold', options.threshold, 0, Number.MAX_VALUE);
    const search = (approximate: boolean | undefined) =>
      this.store.search(descriptor, { k, metric, approximate, candidates: options.candidates });
    // No count first: that is a scan of every row in PostgreSQL (over 100 ms at a million faces).
    let found = (await this.store.meta()) ? await search(options.approximate) : [];
    if (found.length === 0 && (await this.store.count()) > 0) {
      // Faces are stored but none came back: the approximate index can return no candidate, and a face can be
      // added between the search and the count. The exact search finds the nearest face whenever one is stored, so
      // that every result has a distance.
      found = await search(false);
    }
    if (found.length === 0) {
      throw new VggFaceError(
        'E_GALLERY',
        `${this.store.location}: the gallery is empty: add faces first with "vggface gallery add"`,
        { input: this.store.location },
      );
    }
    const matches = found.map((m) => ({ ...m, verified: m.distance <= threshold }));
    const best = matches[0];
    return {
      identity: best.verified ? best.identity : UNKNOWN,
      distance: best.distance,
      threshold,
      metric,
      matches,
    };
  }

  async list(): Promise<IdentitySummary[]> {
    return this.store.list();
  }

  /** Removes an identity; an identity the gallery does not hold is an error. */
  async remove(identity: string): Promise<number> {
    return removeIdentity(this.store, identity);
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}
