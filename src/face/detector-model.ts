/**
 * The YuNet model file: the user's (--detector-model / $VGGFACE_DETECTOR_MODEL), else the published file from the
 * OpenCV Zoo, fetched on first use into `<cache>/detector/` and checked (size, SHA-256, ONNX interface) before it
 * is used. A file that fails the check never reaches the cache.
 */
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { VggFaceError } from '../errors.js';
import { readOnnxInfo } from '../onnx/inspect.js';
import { downloadFile, type DownloadProgress } from '../util/download.js';
import { checkOutputPath } from '../util/files.js';
import { sha256File } from '../util/hash.js';
import { envValue } from '../util/env.js';
import { readHead, sniffOnnx } from '../weights/formats.js';
import { YUNET_INPUT, YUNET_OUTPUTS } from './yunet.js';

export const YUNET_FILE = 'face_detection_yunet_2023mar.onnx';
export const YUNET_URL = `https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/${YUNET_FILE}`;
export const YUNET_BYTES = 229_738;
export const YUNET_SHA256 = 'ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0';

export const DETECTOR_OFFLINE_HINT =
  `To use a copy you have, pass it with --detector-model FILE (or set VGGFACE_DETECTOR_MODEL=FILE); ` +
  `to fetch it elsewhere, download ${YUNET_URL}. To describe images as given, without detection, pass --detector none`;

export interface DetectorModelOptions {
  /** A YuNet ONNX file to use as it is; defaults to $VGGFACE_DETECTOR_MODEL, else the cached download. */
  readonly model?: string;
  readonly cacheDir: string;
  /** Where to fetch from; defaults to $VGGFACE_DETECTOR_URL, else the OpenCV Zoo. */
  readonly url?: string;
  readonly onProgress?: (p: DownloadProgress) => void;
}

/** Checks that a file is an ONNX model with YuNet's input and outputs. */
export function checkYuNetInterface(path: string): void {
  const { head } = readHead(path);
  if (!sniffOnnx(head))
    throw new VggFaceError('E_MODEL', `${path}: not an ONNX model, expected the YuNet face detector (${YUNET_FILE})`, {
      input: path,
    });
  const info = readOnnxInfo(path);
  const missing = YUNET_OUTPUTS.filter((o) => !info.outputs.includes(o));
  if (!info.inputs.includes(YUNET_INPUT) || missing.length > 0) {
    throw new VggFaceError(
      'E_MODEL',
      `${path}: not a YuNet face detector: expected input "${YUNET_INPUT}" and outputs ${YUNET_OUTPUTS.join(', ')}; ` +
        `it has inputs ${info.inputs.join(', ') || 'none'} and outputs ${info.outputs.join(', ') || 'none'}`,
      { input: path },
    );
  }
}

/** Whether `path` is exactly the published file (size and SHA-256). */
async function isPublishedFile(path: string): Promise<boolean> {
  try {
    if ((await stat(path)).size !== YUNET_BYTES) return false;
  } catch {
    return false;
  }
  return (await sha256File(path)) === YUNET_SHA256;
}

/** Returns the path of the detector model, downloading and checking the published file first if needed. */
export async function ensureDetectorModel(options: DetectorModelOptions): Promise<string> {
  const given = options.model ?? envValue('detectorModel');
  if (given !== undefined) {
    checkYuNetInterface(given);
    return given;
  }
  const dir = join(options.cacheDir, 'detector');
  const target = join(dir, YUNET_FILE);
  if (await isPublishedFile(target)) return target;

  const url = options.url ?? envValue('detectorUrl') ?? YUNET_URL;
  checkOutputPath(target); // before the download: the checked file is renamed onto it
  const staging = join(dir, `${YUNET_FILE}.download`);
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new VggFaceError('E_IO', `${dir}: cannot create the detector cache: ${(err as Error).message}`, {
      input: dir,
      cause: err,
    });
  }
  await downloadFile(url, staging, {
    onProgress: options.onProgress,
    hint: DETECTOR_OFFLINE_HINT,
    maxBytes: 16 * YUNET_BYTES,
  });
  const size = (await stat(staging)).size;
  const sha = await sha256File(staging);
  if (size !== YUNET_BYTES || sha !== YUNET_SHA256) {
    await rm(staging, { force: true });
    throw new VggFaceError(
      'E_FORMAT',
      `${url}: the downloaded file is not ${YUNET_FILE} (${size} bytes, sha256 ${sha}; ` +
        `expected ${YUNET_BYTES} bytes, sha256 ${YUNET_SHA256}); it was removed. ${DETECTOR_OFFLINE_HINT}`,
      { input: url },
    );
  }
  try {
    checkYuNetInterface(staging);
  } catch (err) {
    await rm(staging, { force: true });
    throw err;
  }
  await rename(staging, target);
  return target;
}
