/**
 * Where `describe` writes its descriptors: JSON lines (stdout or a file), or a float32 matrix (.f32 raw rows, or .npy)
 * with an index of JSON lines saying which rows belong to which image. Records are written one image at a time,
 * in input order, so a run that stops can be resumed: the images already complete are skipped, and whatever the
 * stopped run left half-written (its last image) is cut off and done again. Each image ends up written exactly once.
 */
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { fileError, usageError, VggFaceError } from '../errors.js';
import type { DetectedFace } from '../face/types.js';
import { faceJson, vectorJson, writeLine } from './json.js';
import { NPY_HEADER_BYTES, npyHeader, parseNpyHeader } from './npy.js';
import { checkOutputPath } from '../util/files.js';

export const OUTPUT_FORMATS = ['jsonl', 'npy', 'f32'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** One image's outcome: one row per face (detection), or exactly one row (the image as given). */
export interface ImageRecord {
  readonly image: string;
  /** True when faces were detected: the record may have zero or several rows. */
  readonly detected: boolean;
  readonly rows: readonly { readonly face?: DetectedFace; readonly descriptor: Float32Array }[];
}

export interface DescriptorSink {
  /** Images already complete in the output (from an earlier run, with resume). */
  readonly done: ReadonlySet<string>;
  write(record: ImageRecord): Promise<void>;
  close(): Promise<void>;
}

/** What a resumed output must have been written with, so rows of different kinds never mix. */
export interface OutputSettings {
  readonly dimension: number;
  readonly layer: string;
  readonly normalized: boolean;
  readonly detector: string;
}

export interface SinkOptions {
  /** Output file; undefined writes JSON lines to `stdout`. */
  readonly path?: string;
  readonly format: OutputFormat;
  readonly resume: boolean;
  readonly overwrite: boolean;
  /** The run's input files (images, list, model): the output and its index must be none of them. */
  readonly inputs?: readonly string[];
  readonly settings: OutputSettings;
  readonly stdout: NodeJS.WritableStream;
}

export function outputFormatFor(path: string, given: string | undefined): OutputFormat {
  if (given !== undefined) {
    if (!(OUTPUT_FORMATS as readonly string[]).includes(given))
      throw usageError(
        `Expected one of ${OUTPUT_FORMATS.join(', ')} for --output-format but received ${JSON.stringify(given)}`,
        '--output-format',
      );
    return given as OutputFormat;
  }
  const ext = /\.([a-z0-9]+)$/i.exec(path)?.[1]?.toLowerCase();
  if (ext === 'jsonl' || ext === 'ndjson' || ext === 'json') return 'jsonl';
  if (ext === 'npy') return 'npy';
  if (ext === 'f32' || ext === 'bin') return 'f32';
  throw usageError(
    `${path}: cannot tell the output format from the extension; use .jsonl, .npy or .f32, or --output-format`,
    '--output',
  );
}

export function indexPathFor(path: string): string {
  return `${path}.index.jsonl`;
}

export interface TargetOptions {
  /** The matrix formats write an index beside the file: it is checked too. Default jsonl. */
  readonly format?: OutputFormat;
  /** The run's input files: the output must be none of them. */
  readonly inputs?: readonly string[];
}

/**
 * Refuses to replace an existing output unless asked, and to write onto anything but a regular file that is not
 * an input (the matrix formats' index too): called before the model loads, so the mistake is cheap, and before
 * anything is opened, so a refusal leaves nothing behind. Returns the size of what is there (0 for nothing).
 */
export async function checkOutputTarget(
  path: string,
  resume: boolean,
  overwrite: boolean,
  options: TargetOptions = {},
): Promise<number> {
  const existing = checkOutputPath(path, options.inputs).size;
  if ((options.format ?? 'jsonl') !== 'jsonl') checkOutputPath(indexPathFor(path), options.inputs);
  if (existing > 0 && !resume && !overwrite) {
    throw usageError(`${path} exists: pass --resume to continue it, or --overwrite to start again`, '--output');
  }
  return existing;
}

export async function openDescriptorSink(options: SinkOptions): Promise<DescriptorSink> {
  if (!options.path) {
    if (options.resume) throw usageError('--resume needs --output FILE', '--resume');
    return new JsonlSink(options.stdout, false, new Set());
  }
  const existing = await checkOutputTarget(options.path, options.resume, options.overwrite, options);
  const resume = options.resume && existing > 0;
  return options.format === 'jsonl'
    ? openJsonl(options.path, resume, options.settings)
    : openMatrix(options.path, options.format, resume, options.settings);
}

async function openFile(path: string, flags: string): Promise<FileHandle> {
  try {
    return await open(path, flags);
  } catch (err) {
    throw fileError(path, err, 'write');
  }
}

// ------------------------------------------------------------------------------------------------ JSON lines

class JsonlSink implements DescriptorSink {
  constructor(
    private readonly stream: NodeJS.WritableStream,
    /** True for a file stream this sink opened (and ends); false for stdout. */
    private readonly owned: boolean,
    readonly done: ReadonlySet<string>,
  ) {}

  async write(r: ImageRecord): Promise<void> {
    const label = JSON.stringify(r.image);
    const lines = !r.detected
      ? r.rows.map((row) => `{"image":${label},"descriptor":${vectorJson(row.descriptor)}}`)
      : r.rows.length === 0
        ? [`{"image":${label},"faces":0}`]
        : r.rows.map(
            (row) => `{"image":${label},"face":${faceJson(row.face!)},"descriptor":${vectorJson(row.descriptor)}}`,
          );
    for (const line of lines) await writeLine(this.stream, line);
  }

  async close(): Promise<void> {
    if (!this.owned) return;
    // The stream was opened with autoClose: ending it closes the file.
    await new Promise<void>((resolve, reject) => {
      this.stream.once('error', reject);
      this.stream.once('close', resolve);
      this.stream.end();
    });
  }
}

/** Every line of a file with its byte range, reading only the first `prefix` bytes of each line's text. */
async function* scanLines(
  path: string,
  prefix = 4096,
): AsyncGenerator<{ start: number; end: number; head: string; complete: boolean }> {
  let offset = 0;
  let lineStart = 0;
  let head: Buffer[] = [];
  let headBytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    let from = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, from);
      const piece = chunk.subarray(from, nl < 0 ? chunk.length : nl);
      if (headBytes < prefix) {
        head.push(piece.subarray(0, prefix - headBytes));
        headBytes += Math.min(piece.length, prefix - headBytes);
      }
      if (nl < 0) break;
      yield { start: lineStart, end: offset + nl + 1, head: Buffer.concat(head).toString('utf8'), complete: true };
      lineStart = offset + nl + 1;
      head = [];
      headBytes = 0;
      from = nl + 1;
    }
    offset += chunk.length;
  }
  if (lineStart < offset)
    yield { start: lineStart, end: offset, head: Buffer.concat(head).toString('utf8'), complete: false };
}

/** The image a JSON line is about: lines start with {"image":"..."}, so only the head needs parsing. */
function imageOfLine(head: string, path: string, at: number): string {
  const m = /^\{"image":("(?:[^"\\]|\\.)*")/.exec(head);
  if (!m)
    throw new VggFaceError('E_FORMAT', `${path}: cannot resume: the line at byte ${at} is not a describe output line`, {
      input: path,
    });
  return JSON.parse(m[1]) as string;
}

async function openJsonl(path: string, resume: boolean, settings: OutputSettings): Promise<DescriptorSink> {
  const done = new Set<string>();
  let keep = 0;
  if (resume) {
    // Images are complete up to the last one in the file, which the stopped run may not have finished.
    let current: string | undefined;
    let currentStart = 0;
    const first = await firstLine(path);
    if (first !== undefined) checkJsonlLine(first, settings, path);
    for await (const line of scanLines(path)) {
      if (!line.complete) break;
      const image = imageOfLine(line.head, path, line.start);
      if (image !== current) {
        if (current !== undefined) done.add(current);
        current = image;
        currentStart = line.start;
      }
    }
    keep = current === undefined ? 0 : currentStart;
  }
  const file = await openFile(path, resume ? 'r+' : 'w');
  await file.truncate(keep);
  const stream = file.createWriteStream({ start: keep, autoClose: true });
  return new JsonlSink(stream, true, done);
}

/** The first complete line of a file (lines of describe output are under 100 kB), or undefined. */
async function firstLine(path: string): Promise<string | undefined> {
  const fh = await openFile(path, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const nl = buf.subarray(0, bytesRead).indexOf(0x0a);
    return nl < 0 ? undefined : buf.toString('utf8', 0, nl);
  } finally {
    await fh.close();
  }
}

/** The first line of a JSON-lines output to resume must be of the same kind as this run's. */
function checkJsonlLine(line: string, settings: OutputSettings, path: string): void {
  let parsed: { face?: unknown; faces?: unknown; descriptor?: unknown[] };
  try {
    parsed = JSON.parse(line) as typeof parsed;
  } catch {
    throw new VggFaceError('E_FORMAT', `${path}: cannot resume: its first line is not JSON`, { input: path });
  }
  const detected = 'face' in parsed || 'faces' in parsed;
  if (detected !== (settings.detector !== 'none')) {
    throw new VggFaceError(
      'E_USAGE',
      `${path}: cannot resume: it was written ${detected ? 'with' : 'without'} face ` +
        `detection, this run is ${detected ? 'without' : 'with'} it`,
      { input: path },
    );
  }
  if (parsed.descriptor && parsed.descriptor.length !== settings.dimension) {
    throw new VggFaceError(
      'E_USAGE',
      `${path}: cannot resume: its descriptors ` +
        `have ${parsed.descriptor.length} values, this run writes ${settings.dimension}`,
      { input: path },
    );
  }
}

// ------------------------------------------------------------------------------------------------ matrix + index

interface IndexHeader extends OutputSettings {
  readonly vggface: 'describe-index';
  readonly format: OutputFormat;
}

class MatrixSink implements DescriptorSink {
  constructor(
    private readonly matrix: FileHandle,
    private readonly index: FileHandle,
    private readonly format: OutputFormat,
    private readonly dimension: number,
    private rows: number,
    private indexBytes: number,
    readonly done: ReadonlySet<string>,
  ) {}

  private get dataStart(): number {
    return this.format === 'npy' ? NPY_HEADER_BYTES : 0;
  }

  async write(r: ImageRecord): Promise<void> {
    const start = this.rows;
    if (r.rows.length > 0) {
      const bytes = Buffer.alloc(r.rows.length * this.dimension * 4);
      r.rows.forEach((row, i) => {
        if (row.descriptor.length !== this.dimension)
          throw new VggFaceError(
            'E_INTERNAL',
            `descriptor of ${r.image} has ${row.descriptor.length} values, expected ${this.dimension}`,
          );
        bytes.set(
          new Uint8Array(row.descriptor.buffer, row.descriptor.byteOffset, row.descriptor.byteLength),
          i * this.dimension * 4,
        );
      });
      await this.matrix.write(bytes, 0, bytes.length, this.dataStart + start * this.dimension * 4);
      this.rows += r.rows.length;
      if (this.format === 'npy') await this.matrix.write(npyHeader(this.rows, this.dimension), 0, NPY_HEADER_BYTES, 0);
    }
    // The index line last: an image is in the index only once all its rows are.
    const faces = r.detected ? `,"faces":[${r.rows.map((row) => faceJson(row.face!)).join(',')}]` : '';
    const line = Buffer.from(`{"image":${JSON.stringify(r.image)},"rows":[${start},${this.rows}]${faces}}\n`);
    await this.index.write(line, 0, line.length, this.indexBytes);
    this.indexBytes += line.length;
  }

  async close(): Promise<void> {
    await this.matrix.sync();
    await this.index.sync();
    await this.matrix.close();
    await this.index.close();
  }
}

async function openMatrix(
  path: string,
  format: OutputFormat,
  resume: boolean,
  settings: OutputSettings,
): Promise<DescriptorSink> {
  const indexPath = indexPathFor(path);
  const header: IndexHeader = { vggface: 'describe-index', format, ...settings };
  const done = new Set<string>();
  let rows = 0;
  let indexBytes = 0;
  if (resume) {
    let first = true;
    if (checkOutputPath(indexPath).size === 0)
      throw new VggFaceError('E_FORMAT', `${indexPath}: cannot resume ${path}: its index is missing or empty`, {
        input: indexPath,
      });
    for await (const line of scanLines(indexPath, 1 << 16)) {
      if (!line.complete) break;
      if (first) {
        first = false;
        checkIndexHeader(line.head, header, indexPath);
      } else {
        const m = /"rows":\[(\d+),(\d+)\]/.exec(line.head);
        if (!m || Number(m[1]) !== rows)
          throw new VggFaceError(
            'E_FORMAT',
            `${indexPath}: cannot resume: the line at byte ${line.start} does ` +
              `not continue the rows (expected row ${rows})`,
            { input: indexPath },
          );
        done.add(imageOfLine(line.head, indexPath, line.start));
        rows = Number(m[2]);
      }
      indexBytes = line.end;
    }
    if (first)
      throw new VggFaceError('E_FORMAT', `${indexPath}: cannot resume ${path}: its index is missing or empty`, {
        input: indexPath,
      });
    const needed = (format === 'npy' ? NPY_HEADER_BYTES : 0) + rows * settings.dimension * 4;
    const have = checkOutputPath(path).size;
    if (have < needed)
      throw new VggFaceError(
        'E_FORMAT',
        `${path}: cannot resume: the index lists ${rows} rows but the file holds only ${have} bytes (${needed} needed)`,
        { input: path },
      );
    if (format === 'npy') {
      const fh = await openFile(path, 'r');
      const head = Buffer.alloc(NPY_HEADER_BYTES);
      await fh.read(head, 0, NPY_HEADER_BYTES, 0);
      await fh.close();
      const parsed = parseNpyHeader(head);
      if (!parsed || parsed.columns !== settings.dimension || parsed.headerBytes !== NPY_HEADER_BYTES) {
        throw new VggFaceError(
          'E_FORMAT',
          `${path}: cannot resume: not a ${settings.dimension}-column float32 .npy written by vggface`,
          { input: path },
        );
      }
    }
  }
  const matrix = await openFile(path, resume ? 'r+' : 'w');
  const index = await openFile(indexPath, resume ? 'r+' : 'w');
  // Cut what the stopped run left after its last complete image.
  await matrix.truncate((format === 'npy' ? NPY_HEADER_BYTES : 0) + rows * settings.dimension * 4);
  await index.truncate(indexBytes);
  if (format === 'npy') await matrix.write(npyHeader(rows, settings.dimension), 0, NPY_HEADER_BYTES, 0);
  if (!resume) {
    const line = Buffer.from(JSON.stringify(header) + '\n');
    await index.write(line, 0, line.length, 0);
    indexBytes = line.length;
  }
  return new MatrixSink(matrix, index, format, settings.dimension, rows, indexBytes, done);
}

function checkIndexHeader(head: string, want: IndexHeader, indexPath: string): void {
  let got: Partial<IndexHeader>;
  try {
    got = JSON.parse(head) as Partial<IndexHeader>;
  } catch {
    throw new VggFaceError('E_FORMAT', `${indexPath}: cannot resume: the first line is not a vggface index header`, {
      input: indexPath,
    });
  }
  for (const key of ['vggface', 'format', 'dimension', 'layer', 'normalized', 'detector'] as const) {
    if (got[key] !== want[key]) {
      throw new VggFaceError(
        'E_USAGE',
        `${indexPath}: cannot resume: it was written ` +
          `with ${key} ${JSON.stringify(got[key])}, this run has ${JSON.stringify(want[key])}`,
        { input: indexPath },
      );
    }
  }
}
