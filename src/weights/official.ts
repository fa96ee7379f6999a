/**
 * Where the published VGG-Face weights come from, fetched into the cache on first use when no weights are given.
 *
 * The same network (Parkhi, Vedaldi, Zisserman 2015) is published in several places and layouts. They are tried in
 * order until one gives a checked file: its size and checksum where one is published, then its content (layout
 * detected by content, the VGG-Face topology at the published widths, finite weights) read in a worker thread. Which
 * source was used, and why earlier ones were skipped, is said on stderr (or to `log`). `VGGFACE_WEIGHTS_URL` (or
 * `--source URL`) replaces the list with one location: a tarball holding VGG_FACE.caffemodel, or a weight file in any
 * layout.
 *
 * Only the Oxford tarball has a published checksum (bob.bio.face pins its md5); the other files publish none, so they
 * are checked by size bounds and by reading them. Every copy yields the same network identity (identity.ts).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import * as tar from 'tar';
import { fileError, VggFaceError } from '../errors.js';
import { downloadFile, type DownloadOptions, type DownloadProgress } from '../util/download.js';
import { envValue } from '../util/env.js';
import { checkOutputPath } from '../util/files.js';
import { readHead } from './formats.js';
import { sniffCaffe } from './caffe.js';
import { checkWeightsInWorker, type WeightsCheck } from './check-worker.js';
import type { FormatId } from './types.js';

export const OFFICIAL_WEIGHTS_URL = 'https://www.robots.ox.ac.uk/~vgg/software/vgg_face/src/vgg_face_caffe.tar.gz';
export const OFFICIAL_CAFFEMODEL = 'VGG_FACE.caffemodel';
/** 145,002,878 parameters x 4 bytes: a complete official caffemodel is at least this large. */
export const OFFICIAL_MIN_BYTES = 145_002_878 * 4;
/** Every float32 weight file of the network holds its 145,002,878 parameters. */
const PARAMETER_BYTES = OFFICIAL_MIN_BYTES;
/** No copy of the network is far larger than its parameters (float64 would be 1.16 GB). */
const MAX_DOWNLOAD_BYTES = 2 * 1024 ** 3;
/** About what a weight file (and the ONNX model converted from it) takes: the parameters plus framing. */
const WEIGHTS_APPROX_BYTES = 580_100_000;

/** The Oxford VGG statement of terms, as its VGG Face page gives it (quoted by keras-vggface, deepface and others). */
const OXFORD_TERMS =
  '"These models can be used for non-commercial research purposes under Creative Commons Attribution ' +
  'License." (Oxford VGG, https://www.robots.ox.ac.uk/~vgg/software/vgg_face/)';

/** One place the published network can be downloaded from. */
export interface WeightSource {
  /** Short name for `vggface weights fetch --source NAME` and messages. */
  readonly name: string;
  readonly description: string;
  readonly url: string;
  /** The layout of the weights (undefined: detected after the download, for a location given by the user). */
  readonly format?: FormatId;
  /** The download is a gzipped tarball holding VGG_FACE.caffemodel (extracted, the tarball then removed). */
  readonly archive?: 'tar.gz';
  /** File name of the download in the cache while it is fetched and checked. */
  readonly download: string;
  /** File name of the checked weights in the cache. */
  readonly file: string;
  /** The exact size of the download, where it is published (enforced). */
  readonly bytes?: number;
  /** About how large the download is, for the free-space check and messages (not enforced). */
  readonly approxBytes: number;
  /** About how large the weight file is once extracted (and the converted model), for the free-space check. */
  readonly weightsBytes: number;
  /** The smallest acceptable weight file. */
  readonly minBytes: number;
  /** The largest acceptable download. */
  readonly maxBytes: number;
  /** Published checksums of the download, and who publishes them. */
  readonly md5?: string;
  readonly sha256?: string;
  readonly checksumFrom?: string;
  /** Require the published widths (default true; the tests' narrow network is served with false). */
  readonly fullSize?: boolean;
  /** The terms of use, as the publisher states them. */
  readonly terms: string;
}

/** Oxford's tarball, the same bytes wherever it is mirrored. */
const OXFORD_TARBALL = {
  format: 'caffe',
  archive: 'tar.gz',
  download: 'vgg_face_caffe.tar.gz',
  file: OFFICIAL_CAFFEMODEL,
  approxBytes: 540_000_000,
  weightsBytes: WEIGHTS_APPROX_BYTES,
  minBytes: OFFICIAL_MIN_BYTES,
  maxBytes: MAX_DOWNLOAD_BYTES,
  md5: 'ee707ac6e890bc148cb155adeaad12be',
  checksumFrom: 'bob.bio.face, whose VGG16_Oxford pins it as file_hash',
} as const;

/** The published copies, in the order they are tried. */
export const WEIGHT_SOURCES: readonly WeightSource[] = [
  {
    name: 'oxford-caffe',
    description: "Oxford VGG's release of the network (Caffe), the original",
    url: OFFICIAL_WEIGHTS_URL,
    ...OXFORD_TARBALL,
    terms: OXFORD_TERMS,
  },
  {
    name: 'deepface',
    description: "deepface's Keras copy (serengil/deepface_models release v1.0), what deepface downloads",
    url: 'https://github.com/serengil/deepface_models/releases/download/v1.0/vgg_face_weights.h5',
    format: 'keras-deepface',
    download: 'vgg_face_weights.h5.unverified',
    file: 'vgg_face_weights.h5',
    // as a third party measured it; deepface publishes no size or checksum, so it is not enforced
    approxBytes: 580_085_408,
    weightsBytes: WEIGHTS_APPROX_BYTES,
    minBytes: PARAMETER_BYTES,
    maxBytes: MAX_DOWNLOAD_BYTES,
    terms:
      'deepface is MIT-licensed; its author states that the weights it wraps keep their original licences: ' +
      '"VGG-Face is licensed under Creative Commons Attribution License. That\'s why, it is restricted to ' +
      'adopt VGG-Face for commercial use." (serengil/deepface issue #136). ' +
      OXFORD_TERMS,
  },
  {
    name: 'keras-vggface',
    description: "keras-vggface's Keras model (rcmalli/keras-vggface release v2.0), converted from the Caffe release",
    url: 'https://github.com/rcmalli/keras-vggface/releases/download/v2.0/rcmalli_vggface_tf_vgg16.h5',
    format: 'keras-vggface',
    download: 'rcmalli_vggface_tf_vgg16.h5.unverified',
    file: 'rcmalli_vggface_tf_vgg16.h5',
    // "580 MB" in its README; no exact size or checksum is published (its get_file passes no file_hash)
    approxBytes: WEIGHTS_APPROX_BYTES,
    weightsBytes: WEIGHTS_APPROX_BYTES,
    minBytes: PARAMETER_BYTES,
    maxBytes: MAX_DOWNLOAD_BYTES,
    terms:
      'keras-vggface README: "Original models can be used for non-commercial research purposes under Creative ' +
      'Commons Attribution License. The code that provided in this project is under MIT License."',
  },
  {
    name: 'oxford-pytorch',
    description: "Samuel Albanie's PyTorch import of the network (vgg_face_dag.pth), hosted by Oxford",
    url: 'https://www.robots.ox.ac.uk/~albanie/models/pytorch-mcn/vgg_face_dag.pth',
    format: 'pytorch',
    download: 'vgg_face_dag.pth.unverified',
    file: 'vgg_face_dag.pth',
    approxBytes: WEIGHTS_APPROX_BYTES, // no size or checksum is published
    weightsBytes: WEIGHTS_APPROX_BYTES,
    minBytes: PARAMETER_BYTES,
    maxBytes: MAX_DOWNLOAD_BYTES,
    terms:
      'no terms of its own are stated with the file: it is a conversion of ' +
      `Oxford VGG's model, whose terms apply: ${OXFORD_TERMS}`,
  },
  {
    name: 'idiap-caffe',
    description: "Idiap's mirror of Oxford's tarball (bob.bio.face's second location)",
    url: 'http://bobconda.lab.idiap.ch/public-upload/data/bob/bob.bio.face/master/caffe/vgg_face_caffe.tar.gz',
    ...OXFORD_TARBALL,
    terms: `a mirror of Oxford VGG's tarball: ${OXFORD_TERMS}`,
  },
];

export const OFFLINE_HINT =
  'To use weights you already have, pass them with --weights FILE (or set VGGFACE_WEIGHTS=FILE); ' +
  `to fetch them elsewhere, download ${OFFICIAL_WEIGHTS_URL} and pass the VGG_FACE.caffemodel it contains ` +
  '(or place it in the cache: see "vggface weights list")';

/** The source `--source` names: a built-in source's name, or an http(s) URL. */
export function resolveSource(nameOrUrl: string, options: { minBytes?: number } = {}): WeightSource {
  const known = WEIGHT_SOURCES.find((s) => s.name === nameOrUrl);
  if (known) return known;
  if (/^https?:\/\//i.test(nameOrUrl)) return urlSource(nameOrUrl, options.minBytes);
  throw new VggFaceError(
    'E_USAGE',
    `unknown weight source "${nameOrUrl}": expected one ` +
      `of ${WEIGHT_SOURCES.map((s) => s.name).join(', ')}, or an http(s) URL`,
    { input: nameOrUrl },
  );
}

/** A location the user gave: a tarball holding VGG_FACE.caffemodel (by its name), or a weight file in any layout. */
export function urlSource(url: string, minBytes?: number): WeightSource {
  let name = 'download';
  try {
    const last = basename(decodeURIComponent(new URL(url).pathname));
    if (/^[\w][\w.+-]{0,200}$/.test(last)) name = last;
  } catch {
    throw new VggFaceError('E_USAGE', `${url}: not a valid URL`, { input: url });
  }
  const isTar = /\.(tar\.gz|tgz)$/i.test(name);
  return {
    name: 'url',
    description: 'the location given by VGGFACE_WEIGHTS_URL or --source',
    url,
    ...(isTar ? { archive: 'tar.gz' as const } : {}),
    download: isTar ? name : `${name}.unverified`,
    file: isTar ? OFFICIAL_CAFFEMODEL : name,
    approxBytes: minBytes ?? WEIGHTS_APPROX_BYTES,
    weightsBytes: minBytes ?? WEIGHTS_APPROX_BYTES,
    minBytes: minBytes ?? OFFICIAL_MIN_BYTES,
    maxBytes: MAX_DOWNLOAD_BYTES,
    fullSize: minBytes === undefined,
    terms: 'those of whoever publishes it',
  };
}

export interface OfficialWeightsOptions {
  readonly cacheDir: string;
  /** One location instead of the built-in sources. Defaults to $VGGFACE_WEIGHTS_URL (empty means unset). */
  readonly url?: string;
  /** A built-in source's name or a URL: only that one is tried. */
  readonly source?: string;
  /** The sources to try, in order (default {@link WEIGHT_SOURCES}); tests serve their own. */
  readonly sources?: readonly WeightSource[];
  readonly onProgress?: (p: DownloadProgress) => void;
  /** Called when a download from a source starts (the CLI starts a progress bar per source). */
  readonly onSourceStart?: (source: WeightSource) => void;
  /** Where the messages go (which source, why others were skipped, the terms of use). Default: stderr. */
  readonly log?: (message: string) => void;
  /**
   * Smallest acceptable weights for a `url` source; tests of the download path lower it for a narrow model (which then
   * need not have the published widths).
   */
  readonly minBytes?: number;
  /** Abort a download when no byte arrives for this long (default 60 s). */
  readonly idleTimeoutMs?: number;
  /** Fetch even when checked weights are already in the cache. */
  readonly force?: boolean;
  /** Tests: opens the part file for writing (to inject a write error). */
  readonly openOutput?: DownloadOptions['openOutput'];
}

/** What a fetch did. */
export interface FetchOutcome {
  /** The checked weight file in the cache. */
  readonly path: string;
  readonly source: WeightSource;
  /** Whether it was already in the cache (nothing downloaded). */
  readonly cached: boolean;
  /** Why each source tried before it was skipped. */
  readonly skipped: readonly { readonly source: string; readonly reason: string }[];
  /** Layout, topology and identity, when the file was downloaded and checked now. */
  readonly check?: WeightsCheck;
  /** sha256 and md5 of the download (the tarball for an archive). */
  readonly sha256?: string;
  readonly md5?: string;
}

/** One entry of `<cache>/weights.json`: where a cached weight file came from and what it is. */
export interface WeightsRecord {
  readonly file: string;
  readonly source: string;
  readonly url: string;
  readonly fetched: string;
  readonly downloadSha256: string;
  readonly downloadMd5: string;
  /** sha256 of the weight file itself (the download, or the file extracted from it). */
  readonly fileSha256: string;
  readonly bytes: number;
  readonly format: FormatId;
  readonly identity: string;
}

export function weightsDir(cacheDir: string): string {
  return join(cacheDir, 'weights');
}

export function recordsPath(cacheDir: string): string {
  return join(cacheDir, 'weights.json');
}

const defaultLog = (message: string) => process.stderr.write(`vggface: ${message}\n`);

function sourcesFor(options: OfficialWeightsOptions): readonly WeightSource[] {
  if (options.sources) return options.sources;
  if (options.source !== undefined) return [resolveSource(options.source, { minBytes: options.minBytes })];
  const url = options.url ?? envValue('weightsUrl');
  if (url !== undefined) return [urlSource(url, options.minBytes)];
  return WEIGHT_SOURCES;
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    const st = await stat(path);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}

/** The first of the sources' weight files already in the cache (placed there by a fetch, or by hand), if any. */
export async function cachedWeights(
  cacheDir: string,
  sources: readonly WeightSource[] = WEIGHT_SOURCES,
): Promise<{ path: string; source: WeightSource } | undefined> {
  for (const source of sources) {
    const path = join(weightsDir(cacheDir), source.file);
    const size = await sizeOf(path);
    if (size !== undefined && size >= source.minBytes) return { path, source };
  }
  return undefined;
}

/** Returns the path of the weights in the cache, fetching them from the first source that gives a checked copy. */
export async function ensureOfficialWeights(options: OfficialWeightsOptions): Promise<string> {
  return (await fetchWeights(options)).path;
}

/** Bytes free for an unprivileged user in `dir`, or undefined when the file system does not say. */
export async function freeBytes(dir: string): Promise<number | undefined> {
  try {
    const s = await statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}

export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(0)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} bytes`;
}

/** A skip that ends the whole fetch: the disk, not the source, is the problem. */
class DiskError extends Error {
  constructor(readonly error: VggFaceError) {
    super(error.message);
  }
}

/**
 * Fetches the weights into `<cache>/weights/`: tries the sources in order and stops at the first that gives a checked
 * file. A source is skipped (and the next one tried) on a DNS failure, a refused connection, an HTTP error, a stall, a
 * wrong size or checksum, or content that is not the network; a full disk stops the fetch. A download cut short keeps
 * its part file, which the next fetch resumes.
 */
export async function fetchWeights(options: OfficialWeightsOptions): Promise<FetchOutcome> {
  const sources = sourcesFor(options);
  const log = options.log ?? defaultLog;
  if (!options.force) {
    const cached = await cachedWeights(options.cacheDir, sources);
    if (cached) return { path: cached.path, source: cached.source, cached: true, skipped: [] };
  }
  const dir = weightsDir(options.cacheDir);
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw fileError(dir, err, 'create');
  }
  const single = sources.length === 1;
  const skipped: { source: string; reason: string }[] = [];
  const errors: VggFaceError[] = [];
  for (let i = 0; i < sources.length; i++) {
    const source = sources[i];
    try {
      const outcome = await fetchFrom(source, dir, options, log, single);
      await removeStalePartials(dir);
      await recordFetch(options.cacheDir, source, outcome).catch(() => undefined); // the record is informative only
      log(
        `weights from ${source.name} checked (${outcome.check.format}, ` +
          `identity ${outcome.check.identity}): ${outcome.path}`,
      );
      return {
        path: outcome.path,
        source,
        cached: false,
        skipped,
        check: outcome.check,
        sha256: outcome.sha256,
        md5: outcome.md5,
      };
    } catch (err) {
      if (err instanceof DiskError) throw err.error;
      const e =
        err instanceof VggFaceError
          ? err
          : new VggFaceError('E_INTERNAL', `${source.url}: ${(err as Error)?.message ?? String(err)}`, {
              input: source.url,
              cause: err,
            });
      if (single) throw e;
      errors.push(e);
      skipped.push({ source: source.name, reason: e.message });
      const next = sources[i + 1];
      log(`${source.name} skipped: ${e.message}${next ? `; trying ${next.name}` : ''}`);
    }
  }
  const code = errors.every((e) => e.code === 'E_IO') ? 'E_IO' : 'E_NETWORK';
  throw new VggFaceError(
    code,
    'no source gave a checked copy of the VGG-Face ' +
      `weights:\n${skipped.map((s) => `  ${s.source}: ${s.reason}`).join('\n')}\n${OFFLINE_HINT}`,
    { input: sources.map((s) => s.url).join(', ') },
  );
}

interface SourceOutcome {
  readonly path: string;
  readonly check: WeightsCheck;
  readonly sha256: string;
  readonly md5: string;
  readonly fileSha256: string;
  readonly bytes: number;
}

async function fetchFrom(
  source: WeightSource,
  dir: string,
  options: OfficialWeightsOptions,
  log: (m: string) => void,
  single: boolean,
): Promise<SourceOutcome> {
  const download = join(dir, source.download);
  const partBytes = (await sizeOf(`${download}.part`)) ?? 0;
  const need =
    Math.max(0, source.approxBytes - partBytes) + (source.archive ? source.weightsBytes : 0) + source.weightsBytes;
  const free = await freeBytes(dir);
  if (free !== undefined && free < need) {
    throw new VggFaceError(
      'E_IO',
      `not enough free space in ${dir}: ${source.name} needs about ${formatBytes(need)} (the ` +
        `download${source.archive ? ', the extracted model' : ''} and the converted ONNX ` +
        `model), ${formatBytes(free)} is free; free some space or set VGGFACE_CACHE to a folder on a larger disk`,
      { input: dir },
    );
  }
  options.onSourceStart?.(source);
  log(
    `downloading the VGG-Face weights from ${source.name} (${source.url}, ` +
      `about ${formatBytes(source.approxBytes)}` +
      `${partBytes > 0 ? `, resuming after ${formatBytes(partBytes)}` : ''}). ` +
      `Terms of use: ${source.terms}`,
  );
  try {
    await downloadFile(source.url, download, {
      onProgress: options.onProgress,
      hint: single ? OFFLINE_HINT : undefined,
      maxBytes: source.maxBytes,
      minBytes: source.archive ? undefined : source.minBytes,
      expectedBytes: source.bytes,
      idleTimeoutMs: options.idleTimeoutMs,
      openOutput: options.openOutput,
    });
  } catch (err) {
    if (err instanceof VggFaceError && err.code === 'E_IO') throw new DiskError(err);
    throw err;
  }
  try {
    const { md5, sha256 } = await hashFile(download);
    const bytes = (await stat(download)).size;
    if (source.md5 && md5 !== source.md5) {
      throw new VggFaceError(
        'E_FORMAT',
        `${source.url}: checksum mismatch: md5 ${md5}, the published file ` +
          `has ${source.md5} (${source.checksumFrom}); the download was removed`,
        { input: source.url },
      );
    }
    if (source.sha256 && sha256 !== source.sha256) {
      throw new VggFaceError(
        'E_FORMAT',
        `${source.url}: checksum mismatch: sha256 ${sha256}, the published file ` +
          `has ${source.sha256} (${source.checksumFrom}); the download was removed`,
        { input: source.url },
      );
    }
    const head = readHead(download).head;
    const isGzip = head[0] === 0x1f && head[1] === 0x8b;
    if (source.archive || (source.format === undefined && isGzip)) {
      const { path, check } = await extractCaffemodel(source, dir, download);
      return { path, check, md5, sha256, bytes, fileSha256: (await hashFile(path)).sha256 };
    }
    const staged = `${download}.checking`;
    await rename(download, staged);
    try {
      const check = await checkContent(source, staged);
      const path = join(dir, source.file);
      checkOutputPath(path);
      await rename(staged, path);
      return { path, check, md5, sha256, bytes, fileSha256: sha256 };
    } finally {
      await rm(staged, { force: true });
    }
  } finally {
    await rm(download, { force: true });
  }
}

/** Extracts VGG_FACE.caffemodel from the tarball and moves it into place once it is checked. */
async function extractCaffemodel(
  source: WeightSource,
  dir: string,
  tarball: string,
): Promise<{ path: string; check: WeightsCheck }> {
  const url = source.url;
  const minBytes = source.minBytes;
  const staging = join(dir, `extract-${process.pid}-${Date.now().toString(36)}`);
  await mkdir(staging, { recursive: true });
  try {
    let found: string | undefined;
    try {
      await tar.x({
        file: tarball,
        cwd: staging,
        strict: true,
        filter: (p) => p.split('/').pop() === OFFICIAL_CAFFEMODEL,
        onReadEntry: (e) => {
          found = e.path;
        },
      });
    } catch (err) {
      const message =
        (err as NodeJS.ErrnoException)?.code === 'ENOSPC'
          ? 'no space left on device while extracting it'
          : `the downloaded archive is corrupt (${(err as Error).message})`;
      const e = new VggFaceError(
        (err as NodeJS.ErrnoException)?.code === 'ENOSPC' ? 'E_IO' : 'E_FORMAT',
        `${url}: ${message}; it was removed, run again to download it anew`,
        { input: url, cause: err },
      );
      if (e.code === 'E_IO') throw new DiskError(e);
      throw e;
    }
    if (!found) throw new VggFaceError('E_FORMAT', `${url}: the archive has no ${OFFICIAL_CAFFEMODEL}`, { input: url });
    const extracted = join(staging, found);
    const { head, size } = readHead(extracted);
    if (size < minBytes || !sniffCaffe(head)) {
      throw new VggFaceError(
        'E_FORMAT',
        `${url}: ${OFFICIAL_CAFFEMODEL} in the archive is not the VGG-Face model (${size} ` +
          `bytes, ${sniffCaffe(head) ? 'a Caffe model' : 'not a Caffe model'}; expected at least ${minBytes} bytes)`,
        { input: url },
      );
    }
    const check = await checkContent(source, extracted);
    const target = join(dir, source.file);
    checkOutputPath(target);
    await rename(extracted, target);
    return { path: target, check };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Reads the weights (in a worker): the expected layout, the VGG-Face topology at the published widths. */
async function checkContent(source: WeightSource, path: string): Promise<WeightsCheck> {
  let check: WeightsCheck;
  try {
    check = await checkWeightsInWorker(path);
  } catch (err) {
    const e = err as VggFaceError;
    throw new VggFaceError(
      e.code ?? 'E_FORMAT',
      `${source.url}: the download is not usable weights: ${e.message?.replace(`${path}: `, '') ?? String(err)}`,
      { input: source.url, cause: err },
    );
  }
  if (source.format && check.format !== source.format) {
    throw new VggFaceError(
      'E_FORMAT',
      `${source.url}: the download is ${check.format} weights, expected ${source.format}`,
      { input: source.url },
    );
  }
  if ((source.fullSize ?? true) && !check.fullSize) {
    const t = check.topology;
    throw new VggFaceError(
      'E_TOPOLOGY',
      `${source.url}: the download has the VGG-Face topology but not its widths ` +
        `(conv ${t.conv.join(',')}, fc6 ${t.fc6}, fc7 ${t.fc7}, fc8 ${t.fc8}): not the published network`,
      { input: source.url },
    );
  }
  return check;
}

/** md5 and sha256 of a file in one streamed pass. */
export async function hashFile(path: string): Promise<{ md5: string; sha256: string }> {
  const md5 = createHash('md5');
  const sha256 = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) {
      md5.update(chunk as Buffer);
      sha256.update(chunk as Buffer);
    }
  } catch (err) {
    throw fileError(path, err);
  }
  return { md5: md5.digest('hex'), sha256: sha256.digest('hex') };
}

/** Once a source succeeded, partial downloads of the others are of no use: they are removed. */
async function removeStalePartials(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => /\.part(\.json)?$/.test(n)).map((n) => rm(join(dir, n), { force: true })));
}

/** The records of `<cache>/weights.json` (empty when there is none, or it is unreadable). */
export async function readRecords(cacheDir: string): Promise<WeightsRecord[]> {
  try {
    const parsed = JSON.parse(await readFile(recordsPath(cacheDir), 'utf8')) as { weights?: WeightsRecord[] };
    return Array.isArray(parsed.weights) ? parsed.weights : [];
  } catch {
    return [];
  }
}

async function recordFetch(cacheDir: string, source: WeightSource, o: SourceOutcome): Promise<void> {
  const file = basename(o.path);
  const records = (await readRecords(cacheDir)).filter((r) => r.file !== file);
  records.push({
    file,
    source: source.name,
    url: source.url,
    fetched: new Date().toISOString(),
    downloadSha256: o.sha256,
    downloadMd5: o.md5,
    fileSha256: o.fileSha256,
    bytes: o.bytes,
    format: o.check.format,
    identity: o.check.identity,
  });
  const path = recordsPath(cacheDir);
  checkOutputPath(path);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, JSON.stringify({ weights: records }, null, 2) + '\n');
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}
