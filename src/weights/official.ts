/**
 * The official VGG-Face release (Caffe, Oxford VGG, 2015): fetched into the cache on first use when no weights
 * are given. The tarball `vgg_face_caffe.tar.gz` holds `vgg_face_caffe/VGG_FACE.caffemodel` (145,002,878 float32
 * parameters plus protobuf framing, about 553 MiB) and the deploy prototxt. The extracted file is checked here for size
 * and format; its full topology is checked when it is converted.
 */
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as tar from 'tar';
import { VggFaceError } from '../errors.js';
import { downloadFile, type DownloadProgress } from '../util/download.js';
import { readHead } from './formats.js';
import { sniffCaffe } from './caffe.js';

export const OFFICIAL_WEIGHTS_URL = 'https://www.robots.ox.ac.uk/~vgg/software/vgg_face/src/vgg_face_caffe.tar.gz';
export const OFFICIAL_CAFFEMODEL = 'VGG_FACE.caffemodel';
/** 145,002,878 parameters x 4 bytes: a complete official caffemodel is at least this large. */
export const OFFICIAL_MIN_BYTES = 145_002_878 * 4;
/** The tarball is about 540 MB; anything far larger is not it. */
const MAX_TARBALL_BYTES = 2 * 1024 ** 3;

export const OFFLINE_HINT =
  'To use weights you already have, pass them with --weights FILE (or set VGGFACE_WEIGHTS=FILE); ' +
  `to fetch them elsewhere, download ${OFFICIAL_WEIGHTS_URL} and pass the VGG_FACE.caffemodel it contains`;

export interface OfficialWeightsOptions {
  readonly cacheDir: string;
  /** Defaults to $VGGFACE_WEIGHTS_URL, else the Oxford URL. */
  readonly url?: string;
  readonly onProgress?: (p: DownloadProgress) => void;
  /** Smallest acceptable caffemodel; tests of the download path lower it for a narrow model. */
  readonly minBytes?: number;
}

/** Returns the path of the official caffemodel in the cache, downloading and extracting it first if needed. */
export async function ensureOfficialWeights(options: OfficialWeightsOptions): Promise<string> {
  const dir = join(options.cacheDir, 'weights');
  const target = join(dir, OFFICIAL_CAFFEMODEL);
  const minBytes = options.minBytes ?? OFFICIAL_MIN_BYTES;
  try {
    if ((await stat(target)).size >= minBytes) return target;
  } catch {
    // not downloaded yet
  }
  const url = options.url ?? process.env.VGGFACE_WEIGHTS_URL ?? OFFICIAL_WEIGHTS_URL;
  const tarball = join(dir, 'vgg_face_caffe.tar.gz');
  await mkdir(dir, { recursive: true });
  await downloadFile(url, tarball, { onProgress: options.onProgress, hint: OFFLINE_HINT, maxBytes: MAX_TARBALL_BYTES });

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
      await rm(tarball, { force: true });
      throw new VggFaceError('E_FORMAT', `${url}: the downloaded archive is corrupt (${(err as Error).message}); it was removed, run again to download it anew`, { input: url, cause: err });
    }
    if (!found) {
      await rm(tarball, { force: true });
      throw new VggFaceError('E_FORMAT', `${url}: the archive has no ${OFFICIAL_CAFFEMODEL}`, { input: url });
    }
    const extracted = join(staging, found);
    const { head, size } = readHead(extracted);
    if (size < minBytes || !sniffCaffe(head)) {
      await rm(tarball, { force: true });
      throw new VggFaceError(
        'E_FORMAT',
        `${url}: ${OFFICIAL_CAFFEMODEL} in the archive is not the VGG-Face model (${size} bytes, ${sniffCaffe(head) ? 'a Caffe model' : 'not a Caffe model'}; expected at least ${minBytes} bytes)`,
        { input: url },
      );
    }
    await rename(extracted, target);
    await rm(tarball, { force: true });
    return target;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
