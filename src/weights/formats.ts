/**
 * The registry of weight readers and format detection by content (magic bytes and structure, never the extension).
 * Adding a layout means adding its reader to READERS.
 */
import { closeSync, readSync } from 'node:fs';
import { openForReading, regularFileStat } from '../util/files.js';
import { formatError, VggFaceError } from '../errors.js';
import { peekTags, WIRE_VARINT } from '../proto/reader.js';
import { caffeReader } from './caffe.js';
import { hdf5ArticleReader } from './hdf5-article.js';
import { kerasDeepfaceReader, kerasVggfaceReader } from './keras.js';
import { matconvnetReader } from './matconvnet.js';
import { pytorchReader } from './pytorch.js';
import { safetensorsReader } from './safetensors.js';
import { torch7Reader } from './torch7.js';
import { assertFiniteWeights, validateTopology, type Topology } from './topology.js';
import { weightsIdentity } from './identity.js';
import type { FormatId, ReadOptions, WeightReader, WeightSet } from './types.js';

// matconvnet before any HDF5 reader: a MAT v7.3 file is HDF5 too, and gets its own message.
export const READERS: readonly WeightReader[] = [
  caffeReader,
  torch7Reader,
  matconvnetReader,
  safetensorsReader,
  kerasDeepfaceReader,
  kerasVggfaceReader,
  hdf5ArticleReader,
  pytorchReader,
];

/** Every id `--format` accepts. */
export function formatIds(): FormatId[] {
  return ['onnx', ...READERS.map((r) => r.id)];
}

const HEAD_BYTES = 64 * 1024;

/** Checks that `path` is a non-empty regular file (not a device or FIFO) and returns its first bytes and size. */
export function readHead(path: string): { head: Uint8Array; size: number } {
  const size = regularFileStat(path).size;
  if (size === 0) throw formatError(path, 'empty file (0 bytes), expected model weights');
  const fd = openForReading(path);
  try {
    const head = Buffer.alloc(Math.min(HEAD_BYTES, size));
    const n = readSync(fd, head, 0, head.length, 0);
    return { head: head.subarray(0, n), size };
  } finally {
    closeSync(fd);
  }
}

/**
 * ONNX ModelProto starts with ir_version (field 1, varint), then producer/graph/opset fields. A converted model is
 * recognised here, by content like every weight layout, so that detection can tell it from weights (`onnx`).
 */
export function sniffOnnx(head: Uint8Array): boolean {
  const tags = peekTags(head, 16);
  if (tags.length < 2 || tags[0].no !== 1 || tags[0].wire !== WIRE_VARINT) return false;
  return tags.every((t) => [1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25].includes(t.no));
}

/**
 * Detects the layout by content: magic bytes first; where several layouts share a container (HDF5, zip), the
 * candidates' structure checks open the file to tell them apart.
 */
export async function detectFormat(path: string): Promise<FormatId> {
  const { head, size } = readHead(path);
  if (sniffOnnx(head)) return 'onnx';
  const mismatches: { id: FormatId; found: string }[] = [];
  for (const reader of READERS) {
    if (!reader.sniff(head, size)) continue;
    const match = reader.matchStructure ? await reader.matchStructure(path) : true;
    if (match === true) return reader.id;
    mismatches.push({ id: reader.id, found: match });
  }
  if (mismatches.length > 0) {
    const found = [...new Set(mismatches.map((m) => m.found.replace(/\.+$/, '')))].join('; ');
    throw formatError(
      path,
      `its signature matches ${mismatches.map((m) => m.id).join(', ')} but its structure ` +
        `matches none of them: ${found}. Use --format to force one.`,
    );
  }
  const magic = Buffer.from(head.subarray(0, 8)).toString('hex').replace(/(..)/g, '$1 ').trim();
  throw formatError(
    path,
    `unrecognised weight format (first bytes: ${magic}); expected one ` +
      `of: ${formatIds().join(', ')}. Use --format to force one.`,
  );
}

export function readerFor(format: FormatId): WeightReader {
  const reader = READERS.find((r) => r.id === format);
  if (!reader)
    throw new VggFaceError(
      'E_USAGE',
      `format ${format} has no weight reader; expected one of: ${READERS.map((r) => r.id).join(', ')}`,
      { input: format },
    );
  return reader;
}

/** Reads any supported weight file into the canonical weight set, checks its topology and computes its identity. */
export async function readWeights(
  path: string,
  format?: FormatId,
  options: ReadOptions = {},
): Promise<{ weights: WeightSet; topology: Topology; format: FormatId }> {
  const id = format ?? (await detectFormat(path));
  if (format) readHead(path); // same file checks (missing, directory, empty) when the format is forced
  const read = await readerFor(id).read(path, options);
  const topology = validateTopology(read, path);
  assertFiniteWeights(read, path);
  const weights: WeightSet = { ...read, identity: weightsIdentity(read) };
  return { weights, topology, format: id };
}
