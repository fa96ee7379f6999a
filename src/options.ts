/**
 * The options of face detection, alignment and describe, each defined once: its name, CLI flag, kind, range or
 * values, default and description. Everything that accepts them derives from these definitions: the library's
 * resolution (face/detection.ts, face/align-transform.ts, describe-options.ts), the CLI's flags and their help
 * (cli/face-options.ts, cli/options.ts) and the server's JSON schemas (server/schemas.ts, and so the OpenAPI
 * document), so ranges and defaults cannot drift apart.
 *
 * Pure, importing nothing Node-specific: the browser build (src/browser) resolves the same options through it.
 */
import * as check from './validate.js';

export type OptionKind = 'number' | 'integer' | 'oneOf' | 'boolean' | 'string';

interface OptionBase<D> {
  /** The library's name, also the field of the server's requests and the name errors of the library give. */
  readonly name: string;
  /** The CLI flag and its argument (`--min-score <score>`); absent for options the CLI does not offer. */
  readonly flag?: string;
  /** What the option does, lower case, without its range or default (a help line and a schema build on it). */
  readonly description: string;
  /** The value when the option is not given (undefined: none that can be written down, see defaultText). */
  readonly default: D;
  /** How the default reads when it is not the value itself (`all` for no limit, or one that depends on the model). */
  readonly defaultText?: string;
  /** What follows the default in help and descriptions: what the values mean, what an edge does. */
  readonly note?: string;
}

/** A number (`number`) or an integer (`integer`) from min to max, both included. */
export interface RangeOption<D extends number | undefined = number | undefined> extends OptionBase<D> {
  readonly kind: 'number' | 'integer';
  readonly min: number;
  readonly max: number;
  /** How the range reads in help when not as `min..max` (a flag that takes other units than the option). */
  readonly rangeText?: string;
}

export interface OneOfOption<T extends string = string, D extends T | undefined = T | undefined> extends OptionBase<D> {
  readonly kind: 'oneOf';
  readonly values: readonly T[];
}

/** A boolean; its CLI flag, if any, sets the opposite of the default (a flag that changes nothing is no flag). */
export interface BooleanOption extends OptionBase<boolean> {
  readonly kind: 'boolean';
}

/** A non-empty string. */
export interface StringOption<D extends string | undefined = string | undefined> extends OptionBase<D> {
  readonly kind: 'string';
}

export type OptionSpec = RangeOption | OneOfOption | BooleanOption | StringOption;

/** The type of an option's values. */
export type OptionValue<S extends OptionSpec> =
  S extends OneOfOption<infer T> ? T : S extends BooleanOption ? boolean : S extends StringOption ? string : number;

/**
 * Checks a value against its definition and returns it (a number or integer given as a string, as CLI flags are,
 * is converted). `name` is what the error names: the option's own name, or the CLI flag.
 */
export function parseOption<S extends OptionSpec>(spec: S, value: unknown, name: string = spec.name): OptionValue<S> {
  const s: OptionSpec = spec;
  switch (s.kind) {
    case 'number':
      return check.number(name, value, s.min, s.max) as OptionValue<S>;
    case 'integer':
      return check.integer(name, value, s.min, s.max) as OptionValue<S>;
    case 'oneOf':
      return check.oneOf(name, value, s.values) as OptionValue<S>;
    case 'boolean':
      return check.bool(name, value) as OptionValue<S>;
    case 'string':
      return check.nonEmptyString(name, value) as OptionValue<S>;
  }
}

/** The value given, checked, or the option's default when none is given. */
export function resolveOption<S extends OptionSpec>(
  spec: S,
  value: unknown,
  name: string = spec.name,
): OptionValue<S> | S['default'] {
  return value === undefined ? spec.default : parseOption(spec, value, name);
}

/** The value given, checked, or undefined when none is given (where a later step applies the default). */
export function optionalOption<S extends OptionSpec>(
  spec: S,
  value: unknown,
  name: string = spec.name,
): OptionValue<S> | undefined {
  return value === undefined ? undefined : parseOption(spec, value, name);
}

/** The default as help and descriptions write it, or undefined when the option has none. */
export function defaultText(spec: OptionSpec): string | undefined {
  return spec.defaultText ?? (spec.default === undefined ? undefined : String(spec.default));
}

/** `(default 0.75; 0 keeps every candidate...)`: the default and the note, or '' when there is neither. */
export function defaultAndNote(spec: OptionSpec): string {
  const d = defaultText(spec);
  const parts = [d === undefined ? undefined : `default ${d}`, spec.note].filter((p) => p !== undefined);
  return parts.length === 0 ? '' : ` (${parts.join('; ')})`;
}

export type AlignMode = 'none' | 'eyes' | '5pt';
/** ONNX Runtime threads a session may be given (the model's, the detector's); one range for every caller. */
export const MAX_THREADS = 1024;

export const ALIGN_MODES: readonly AlignMode[] = ['none', 'eyes', '5pt'];

export type Layer = 'fc6' | 'fc7' | 'fc8';
export const LAYERS: readonly Layer[] = ['fc6', 'fc7', 'fc8'];

/** How an image becomes the model's 224x224 input (each is described at image/decode.ts's resize). */
const FIT_NAMES = ['crop', 'pad', 'stretch', 'deepface'] as const;
export type Fit = (typeof FIT_NAMES)[number];

export interface FaceOptionSpecs {
  readonly align: OneOfOption<AlignMode, AlignMode>;
  readonly margin: RangeOption<number>;
  readonly size: RangeOption<number>;
  readonly minScore: RangeOption<number>;
  readonly nmsThreshold: RangeOption<number>;
  readonly detectionSize: RangeOption<number>;
  readonly minFaceSize: RangeOption<number>;
  readonly maxFaces: RangeOption<number>;
}

/** Detection (detection.ts) and alignment (align-transform.ts). */
export const FACE_OPTIONS: FaceOptionSpecs = {
  align: {
    kind: 'oneOf',
    name: 'align',
    flag: '--align <mode>',
    values: ALIGN_MODES,
    default: 'eyes',
    description: 'how faces are made upright',
    note:
      'eyes: eye line level, size from all five landmarks; 5pt: least-squares fit of the five landmarks; ' +
      'none: the box, unrotated',
  },
  margin: {
    kind: 'number',
    name: 'margin',
    flag: '--margin <fraction>',
    min: 0,
    // The face would fill 1/9 of the crop.
    max: 4,
    default: 0.2,
    description: 'room around the face in the crop, as a fraction of the face',
  },
  size: {
    kind: 'integer',
    name: 'size',
    flag: '--size <px>',
    min: 16,
    max: 4096,
    // VGG-Face's input.
    default: 224,
    description: 'side of the square crops, in pixels',
  },
  minScore: {
    kind: 'number',
    name: 'minScore',
    flag: '--min-score <score>',
    min: 0,
    max: 1,
    // OpenCV Zoo uses 0.9, which on the test photos drops faces cut by the frame edge or turned away, scored
    // 0.80-0.85, while nothing that is not a face scored above 0.68.
    default: 0.75,
    description: 'ignore detections scored below this',
    note: '0 keeps every candidate the detector scores above 0: thousands per photo',
  },
  nmsThreshold: {
    kind: 'number',
    name: 'nmsThreshold',
    min: 0,
    max: 1,
    // As OpenCV Zoo.
    default: 0.3,
    description: 'boxes overlapping a better one by more than this IoU are dropped',
  },
  detectionSize: {
    kind: 'integer',
    name: 'detectionSize',
    min: 32,
    max: 8192,
    default: 1024,
    description: 'photos are scaled down (never up) so their longer side is at most this many pixels before detection',
  },
  minFaceSize: {
    kind: 'number',
    name: 'minFaceSize',
    flag: '--min-face-size <px>',
    min: 0,
    max: 1_000_000,
    default: 0,
    description: 'ignore faces whose box is smaller than this, in photo pixels',
  },
  maxFaces: {
    kind: 'integer',
    name: 'maxFaces',
    flag: '--max-faces <n>',
    min: 1,
    max: 100_000,
    default: Infinity,
    defaultText: 'all',
    description: 'keep at most the n largest faces of each photo',
  },
};

export interface DescribeOptionSpecs {
  readonly layer: OneOfOption<Layer, Layer>;
  readonly normalize: BooleanOption;
  readonly fit: OneOfOption<Fit, undefined>;
  readonly batchSize: RangeOption<number>;
  readonly maxPixels: RangeOption<number>;
}

/** Describe (describe-options.ts); maxPixels also bounds the photos of detection. */
export const DESCRIBE_OPTIONS: DescribeOptionSpecs = {
  layer: {
    kind: 'oneOf',
    name: 'layer',
    flag: '--layer <layer>',
    values: LAYERS,
    default: 'fc7',
    description: 'which layer',
    note: 'fc7 is the VGG-Face descriptor, fc6 the layer below it, fc8 the logits over the 2,622 training identities',
  },
  normalize: {
    kind: 'boolean',
    name: 'normalize',
    flag: '--raw',
    default: true,
    description: 'L2-normalise the vector',
  },
  fit: {
    kind: 'oneOf',
    name: 'fit',
    flag: '--fit <mode>',
    values: FIT_NAMES,
    default: undefined,
    defaultText: 'crop, or deepface for a model with deepface preprocessing',
    description: 'how non-square images become 224x224',
    note:
      'crop: the centre; pad: black borders; stretch: both sides scaled; deepface: its resize and zero padding; ' +
      '224x224 images are used as they are',
  },
  batchSize: {
    kind: 'integer',
    name: 'batchSize',
    flag: '--batch <n>',
    min: 1,
    max: 256,
    default: 8,
    description: 'images per inference call',
  },
  maxPixels: {
    kind: 'integer',
    name: 'maxPixels',
    flag: '--max-pixels <n>',
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    // 100 megapixels: above any camera photo, below what would exhaust memory.
    default: 100_000_000,
    description: 'refuse images with more pixels than this',
  },
};
