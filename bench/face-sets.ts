/**
 * Face sets made by the network itself, for the search benchmark: fc7 of augmented aligned crops of the photos in
 * ../shared/data/faces, grouped by person (bench/tasks/make-face-set.ts makes one in a child process). Made once
 * into .bench/ and reused: the file name carries the weights' sha256 and size, the precision, the augmentation
 * count and the seed, so other weights or settings make another set.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { sha256, sha256File } from '../src/util/hash.js';
import type { Precision } from '../src/onnx/contract.js';
import { DEFAULT_AUGMENT, type AugmentRanges } from './face-augment.js';
import { ensureFullCaffemodel, FULL_CAFFEMODEL } from './fixtures.js';
import { ROOT, runTask, WORK_DIR } from './harness.js';
import type { MakeFaceSetArgs } from './tasks/make-face-set.js';

export const FACES_DIR = join(ROOT, '..', 'shared', 'data', 'faces');
export const PIVOT_CSV = join(FACES_DIR, 'face-recognition-pivot.csv');
export const DETECTOR_MODEL =
  process.env.VGGFACE_DETECTOR_MODEL || join(ROOT, '..', 'shared', 'models', 'face_detection_yunet_2023mar.onnx');
/**
 * 160 variants of each of the 64 photos: 10,240 faces. The full-size int8 model makes 9.3 faces/s on this idle
 * 2-core machine (18 minutes); the recorded run took 23.7 minutes (7.2 faces/s) beside other work.
 */
export const DEFAULT_AUGMENTATIONS = 160;
export const RANDOM_WEIGHTS =
  'random weights of the real dimensions (the real VGG-Face weights cannot be downloaded here)';

export interface FaceSetOptions {
  /** Weight file; default the full-size random caffemodel of bench/fixtures.ts. */
  readonly weights?: string;
  /** Says what `weights` are; default {@link RANDOM_WEIGHTS} for the fixture, "as given" otherwise. */
  readonly weightsDescription?: string;
  /** Default int8 (10 faces/s against 5.5 for fp32 here). */
  readonly precision?: Precision;
  /** Variants per photo, the first the plain aligned crop; default {@link DEFAULT_AUGMENTATIONS}. */
  readonly augmentations?: number;
  readonly seed?: number;
  readonly ranges?: AugmentRanges;
  readonly log?: (message: string) => void;
}

/** The JSON sidecar (see the task for every field). */
export interface FaceSetMeta {
  readonly dim: number;
  readonly rows: number;
  readonly identities: number;
  readonly augmentations: number;
  readonly seed: number;
  readonly ranges: AugmentRanges;
  readonly model: {
    weights: string;
    weightsSha256: string;
    weightsBytes: number;
    description: string;
    precision: Precision;
    onnx: string;
    output: string;
  };
  readonly photos: readonly { name: string; person: number; facesFound: number; score: number }[];
  readonly skipped: readonly string[];
  /** Per row: person number, index into `photos`, variant number (0 = plain crop). */
  readonly identity: readonly number[];
  readonly photo: readonly number[];
  readonly variant: readonly number[];
  /** fc7 before its ReLU, scaled by the descriptor's norm (ReLU of a row = the descriptor row, within maxReluError). */
  readonly preActivation: { file: string; what: string; maxReluError: number };
  readonly timing: { loadMs: number; detectMs: number; describeMs: number; totalMs: number; facesPerSecond: number };
  readonly createdAt: string;
}

export interface FaceSetFiles {
  /** rows x dim float32 little-endian. */
  readonly dataPath: string;
  /** rows x dim float32: fc7_pre / ||fc7|| (what the face generator is fitted on). */
  readonly prePath: string;
  readonly metaPath: string;
  readonly meta: FaceSetMeta;
}

export interface FaceSet {
  readonly meta: FaceSetMeta;
  readonly dim: number;
  readonly rows: number;
  /** rows x dim, row-major, each row unit-norm. */
  readonly data: Float32Array;
  /** Person per row. */
  readonly identity: Int32Array;
  /** Source photo per row (index into meta.photos). */
  readonly photo: Int32Array;
}

/** Where a set with these settings lives (without extension). */
export async function faceSetPath(
  options: FaceSetOptions = {},
): Promise<{ base: string; args: Omit<MakeFaceSetArgs, 'output'> }> {
  const weights = options.weights ?? (await ensureFullCaffemodel());
  const precision = options.precision ?? 'int8';
  const augmentations = options.augmentations ?? DEFAULT_AUGMENTATIONS;
  if (!Number.isInteger(augmentations) || augmentations < 1)
    throw new Error(`face set: augmentations must be a positive integer, got ${augmentations}`);
  const seed = options.seed ?? 1;
  const sha = await sha256File(weights);
  const bytes = statSync(weights).size;
  const ranges = options.ranges ?? DEFAULT_AUGMENT;
  // Non-default ranges get their own file too (a short hash of them).
  const rangesTag = options.ranges ? `-r${sha256(JSON.stringify(ranges)).slice(0, 8)}` : '';
  const base = join(
    WORK_DIR,
    `face-set-${sha.slice(0, 16)}-${bytes}-${precision}-a${augmentations}-s${seed}${rangesTag}`,
  );
  return {
    base,
    args: {
      dir: FACES_DIR,
      pivot: PIVOT_CSV,
      weights,
      precision,
      cacheDir: join(WORK_DIR, 'faces-cache'),
      detectorModel: DETECTOR_MODEL,
      augmentations,
      seed,
      ranges,
      weightsDescription: options.weightsDescription ?? (weights === FULL_CAFFEMODEL ? RANDOM_WEIGHTS : 'as given'),
      weightsSha256: sha,
    },
  };
}

/** Makes the set once (minutes: see {@link DEFAULT_AUGMENTATIONS}) and returns its files; later calls reuse them. */
export async function ensureAugmentedFaceSet(options: FaceSetOptions = {}): Promise<FaceSetFiles> {
  mkdirSync(WORK_DIR, { recursive: true });
  const { base, args } = await faceSetPath(options);
  const dataPath = `${base}.f32`;
  const metaPath = `${base}.json`;
  const prePath = `${base}.pre.f32`;
  if (![dataPath, metaPath, prePath].every((p) => existsSync(p))) {
    options.log?.(`making face set ${base} (${args.augmentations} variants per photo)`);
    await runTask('make-face-set', { ...args, output: base } satisfies MakeFaceSetArgs);
  }
  const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as FaceSetMeta;
  for (const p of [dataPath, prePath]) {
    const size = statSync(p).size;
    if (size !== meta.rows * meta.dim * 4)
      throw new Error(`${p}: ${size} bytes, expected ${meta.rows} x ${meta.dim} float32 (delete it to make it again)`);
  }
  return { dataPath, prePath, metaPath, meta };
}

/** Reads a rows x dim float32 file. */
export function readRows(path: string, rows: number, dim: number): Float32Array {
  const buf = readFileSync(path);
  if (buf.byteLength !== rows * dim * 4)
    throw new Error(`${path}: ${buf.byteLength} bytes, expected ${rows} x ${dim} float32`);
  // A copy into an aligned buffer: readFileSync's Buffer may sit at any offset of a shared pool.
  const data = new Float32Array(rows * dim);
  new Uint8Array(data.buffer).set(buf);
  return data;
}

/** Reads a set's descriptors and identities into memory (10,240 x 4096 floats: 160 MiB). */
export function loadFaceSet(files: FaceSetFiles): FaceSet {
  const { dim, rows } = files.meta;
  return {
    meta: files.meta,
    dim,
    rows,
    data: readRows(files.dataPath, rows, dim),
    identity: Int32Array.from(files.meta.identity),
    photo: Int32Array.from(files.meta.photo),
  };
}
