/** Options shared by commands that load a model, parsed and validated in one place. */
import type { Command } from 'commander';
import { FITS, type Fit } from '../image/decode.js';
import { PRECISIONS, PREPROCESSING, type Precision, type Preprocessing } from '../onnx/builder.js';
import { formatIds } from '../weights/formats.js';
import type { FormatId } from '../weights/types.js';
import type { LoadOptions } from '../vggface.js';
import * as check from '../validate.js';
import { progressBar, type Progress } from './progress.js';

export interface ModelFlags {
  weights?: string;
  format?: string;
  preprocessing?: string;
  precision?: string;
  threads?: string;
  cacheDir?: string;
}

export function addModelOptions(cmd: Command): Command {
  return cmd
    .option(
      '-w, --weights <file>',
      'weights in any supported layout, or a converted .onnx (default: $VGGFACE_WEIGHTS, else the official release, downloaded on first use)',
    )
    .option('--format <format>', `force the weight layout instead of detecting it: ${formatIds().join(', ')}`)
    .option(
      '--preprocessing <mode>',
      `caffe (RGB 0-255 minus the training mean, as the original) or deepface (0-1, no mean)`,
    )
    .option(
      '--precision <p>',
      `weight precision when converting weights: ${PRECISIONS.join(', ')} (default fp32; int8 calibrates on a built-in set, see vggface convert --help)`,
    )
    .option('--threads <n>', 'ONNX Runtime threads (default: number of cores)')
    .option(
      '--cache-dir <dir>',
      'cache for converted models and downloads (default: $VGGFACE_CACHE or ~/.cache/vggface)',
    );
}

export function addImageOptions(cmd: Command): Command {
  return cmd
    .option(
      '--fit <mode>',
      'how non-square images become 224x224: crop (centre; the default with caffe preprocessing), pad (black borders), stretch, or deepface (its resize and zero padding; the default with deepface preprocessing); 224x224 images are used as they are',
    )
    .option('--max-pixels <n>', 'refuse images with more pixels than this (default 100000000)');
}

export function modelOptions(flags: ModelFlags): LoadOptions {
  let download: Progress | undefined;
  return {
    weights: flags.weights,
    format: flags.format === undefined ? undefined : (check.oneOf('--format', flags.format, formatIds()) as FormatId),
    preprocessing:
      flags.preprocessing === undefined
        ? undefined
        : (check.oneOf('--preprocessing', flags.preprocessing, PREPROCESSING) as Preprocessing),
    precision:
      flags.precision === undefined
        ? undefined
        : (check.oneOf('--precision', flags.precision, PRECISIONS) as Precision),
    threads: flags.threads === undefined ? undefined : check.integer('--threads', flags.threads, 1, 1024),
    cacheDir: flags.cacheDir,
    onDownloadProgress: (p) => {
      download ??= progressBar('Downloading VGG-Face weights', p.total ?? 0, { bytes: true });
      download.update(p.received, p.total);
      if (p.total !== undefined && p.received >= p.total) download.stop();
    },
  };
}

export function imageOptions(flags: { fit?: string; maxPixels?: string }): { fit?: Fit; maxPixels?: number } {
  return {
    fit: flags.fit === undefined ? undefined : check.oneOf('--fit', flags.fit, FITS),
    maxPixels:
      flags.maxPixels === undefined
        ? undefined
        : check.integer('--max-pixels', flags.maxPixels, 1, Number.MAX_SAFE_INTEGER),
  };
}
