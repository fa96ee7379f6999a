/** Options shared by commands that load a model, parsed and validated in one place. */
import type { Command } from 'commander';
import { VggFaceError } from '../errors.js';
import type { Fit } from '../image/decode.js';
import {
  DESCRIBE_OPTIONS,
  defaultAndNote,
  optionalOption,
  resolveOption,
  type OptionSpec,
  type OptionValue,
  MAX_THREADS,
} from '../options.js';
import { PRECISIONS, PREPROCESSING, type Precision, type Preprocessing } from '../onnx/contract.js';
import { formatIds } from '../weights/formats.js';
import type { FormatId } from '../weights/types.js';
import type { LoadOptions } from '../vggface.js';
import * as check from '../validate.js';
import { progressBar, type Progress } from './progress.js';

/** The flag of a defined option, without its argument: `--min-score`. */
export function flagName(spec: OptionSpec): string {
  return spec.flag === undefined ? spec.name : spec.flag.split(' ')[0];
}

/**
 * The help of a defined option: its description, its values or range, its default and note (`room around the face,
 * 0..4 (default 0.2)`). A boolean's flag sets the opposite of its default, so it reads `do not ...` when the
 * default is true. No range is shown when there is no real maximum.
 */
export function flagHelp(spec: OptionSpec, description: string = spec.description): string {
  if (spec.kind === 'boolean') return spec.default ? `do not ${description}` : description;
  const values =
    spec.kind === 'oneOf'
      ? `: ${spec.values.join(', ')}`
      : spec.kind !== 'string' && spec.max < Number.MAX_SAFE_INTEGER
        ? `, ${spec.rangeText ?? `${spec.min}..${spec.max}`}`
        : '';
  return `${description}${values}${defaultAndNote(spec)}`;
}

/**
 * A defined option's flag and help, for commander's `.option(...flagArgs(spec))`. No commander default: the
 * definition's default is in the help, and the value is resolved by {@link resolveFlag} (or left undefined for
 * the library to resolve).
 */
export function flagArgs(spec: OptionSpec, description?: string): [flag: string, help: string] {
  if (spec.flag === undefined) throw new VggFaceError('E_INTERNAL', `${spec.name} has no CLI flag`);
  return [spec.flag, flagHelp(spec, description)];
}

/** Adds a defined option's flag to a command (see {@link flagArgs}). */
export function addFlag(cmd: Command, spec: OptionSpec, description?: string): Command {
  return cmd.option(...flagArgs(spec, description));
}

/** A defined option's flag, checked, or undefined when it is not given. */
export function parseFlag<S extends OptionSpec>(spec: S, raw: string | undefined): OptionValue<S> | undefined {
  return optionalOption(spec, raw, flagName(spec));
}

/** A defined option's flag, checked, or the option's default when it is not given. */
export function resolveFlag<S extends OptionSpec>(spec: S, raw: string | undefined): OptionValue<S> | S['default'] {
  return resolveOption(spec, raw, flagName(spec));
}

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
      'weights in any supported layout, or a converted .onnx (default: ' +
        '$VGGFACE_WEIGHTS, else the official release, downloaded on first use)',
    )
    .option('--format <format>', `force the weight layout instead of detecting it: ${formatIds().join(', ')}`)
    .option(
      '--preprocessing <mode>',
      `caffe (RGB 0-255 minus the training mean, as the original) or deepface (0-1, no mean)`,
    )
    .option(
      '--precision <p>',
      `weight precision when converting weights: ${PRECISIONS.join(', ')} (default fp32; ` +
        'int8 calibrates on a built-in set, see vggface convert --help)',
    )
    .option('--threads <n>', 'ONNX Runtime threads (default: number of cores)')
    .option(
      '--cache-dir <dir>',
      'cache for converted models and downloads (default: $VGGFACE_CACHE or ~/.cache/vggface)',
    );
}

export function addImageOptions(cmd: Command): Command {
  addFlag(cmd, DESCRIBE_OPTIONS.fit);
  return addFlag(cmd, DESCRIBE_OPTIONS.maxPixels);
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
    threads: flags.threads === undefined ? undefined : check.integer('--threads', flags.threads, 1, MAX_THREADS),
    cacheDir: flags.cacheDir,
    onDownloadProgress: (p) => {
      download ??= progressBar('Downloading VGG-Face weights', p.total ?? 0, { bytes: true });
      download.update(p.received, p.total);
      if (p.total !== undefined && p.received >= p.total) download.stop();
    },
  };
}

export function imageOptions(flags: { fit?: string; maxPixels?: string }): { fit?: Fit; maxPixels?: number } {
  // Left undefined when not given: the library applies the defaults (fit's depends on the model).
  return {
    fit: parseFlag(DESCRIBE_OPTIONS.fit, flags.fit),
    maxPixels: parseFlag(DESCRIBE_OPTIONS.maxPixels, flags.maxPixels),
  };
}
