/**
 * PyTorch `.pth` reader (vgg_face_dag and other state dicts), both containers `torch.save` has written:
 * - the zip archive (PyTorch >= 1.6): `<top>/data.pkl` (the top folder's name varies), raw storages
 *   `<top>/data/<key>`, and `<top>/byteorder` ("little"/"big"; absent in files older than 2.1: little);
 * - the legacy stream (< 1.6): pickles of the magic number, the protocol version (1001), sys info and the object,
 *   then the sorted storage keys, then each storage as an 8-byte element count and its raw bytes.
 * The pickles are read by the restricted reader (pickle.ts) with only the globals a state dict needs.
 * Tensors are canonical already (conv OIHW, fc (out, in) reading C,H,W); RGB. Float32 tensors are views over the
 * storage bytes, so the weights exist once in memory.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import yauzl from 'yauzl';
import { fileError, formatError, VggFaceError } from '../errors.js';
import { openForReading } from '../util/files.js';
import { assembleWeightSet, type FoundLayer } from './canonical.js';
import { tensor } from './layout.js';
import { TruncatedPickleError, unpickle } from './pickle.js';
import {
  ELEMENT_SIZE,
  storageDtype,
  tensorToFloat32,
  torchGlobals,
  TorchTensor,
  type StorageRef,
} from './torch-tensors.js';
import { LAYER_NAMES, type WeightReader, type WeightSet } from './types.js';

const ZIP_SIGNATURE = [0x50, 0x4b, 0x03, 0x04];
/** 0x1950a86a20f9469cfc6c, torch.serialization's MAGIC_NUMBER, as pickle's LONG1 stores it (little-endian). */
const LEGACY_MAGIC_BYTES = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL_VERSION = 1001;
/** data.pkl of a state dict is a few kB; refuse absurd sizes before allocating. */
const MAX_PICKLE_BYTES = 256 * 1024 * 1024;
/** Wrapper keys checkpoints put a state dict under. */
const WRAPPER_KEYS = ['state_dict', 'model', 'model_state_dict'];

/** A legacy file starts with PROTO, maybe FRAME, then LONG1 of the magic number. */
function isLegacy(head: Uint8Array): boolean {
  if (head[0] !== 0x80 || head[1] < 2 || head[1] > 5) return false;
  const at = head[2] === 0x95 ? 11 : 2;
  return (
    head[at] === 0x8a &&
    head[at + 1] === LEGACY_MAGIC_BYTES.length &&
    LEGACY_MAGIC_BYTES.every((b, i) => head[at + 2 + i] === b)
  );
}

function isZip(head: Uint8Array): boolean {
  return ZIP_SIGNATURE.every((b, i) => head[i] === b);
}

function readFirstBytes(path: string, n: number): Uint8Array {
  const fd = openForReading(path);
  try {
    const b = Buffer.alloc(n);
    return b.subarray(0, readSync(fd, b, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Containers: each yields the unpickled object and a way to get each storage's bytes.

interface Container {
  readonly layout: string;
  readonly root: unknown;
  readonly littleEndian: boolean;
  /** Bytes of storage `key`, from its first element. */
  storageBytes(key: string): Promise<Uint8Array>;
  close(): void;
}

/** Collects the storages the pickle references, by key. */
function storageRegistry(path: string, source: string, legacy: boolean) {
  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: unknown): StorageRef => {
    // zip: ('storage', storage_type, key, location, numel); legacy: (..., numel, view_metadata)
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5)
      throw formatError(path, `${source}: unexpected persistent id ${describe(pid)}`);
    const dtype = storageDtype(pid[1]);
    const [, , key, , numel] = pid;
    if (!dtype) throw formatError(path, `${source}: persistent id names no storage type (${describe(pid[1])})`);
    if (typeof key !== 'string' || !Number.isSafeInteger(numel) || (numel as number) < 0)
      throw formatError(path, `${source}: malformed storage id ${describe(pid)}`);
    const known = storages.get(key);
    if (known && known.dtype !== dtype)
      throw formatError(path, `${source}: storage ${key} is used as both ${known.dtype} and ${dtype}`);
    const root: StorageRef = known ?? { dtype, key, elementOffset: 0, numel: numel as number };
    storages.set(key, root);
    const view = legacy ? pid[5] : null;
    if (view === null || view === undefined) return root;
    // Legacy storage view: (view_key, offset, view_size) into the root storage.
    if (!Array.isArray(view) || view.length !== 3 || !Number.isSafeInteger(view[1]) || !Number.isSafeInteger(view[2])) {
      throw formatError(path, `${source}: malformed storage view ${describe(view)}`);
    }
    return { dtype, key, elementOffset: view[1] as number, numel: view[2] as number };
  };
  return { storages, persistentLoad };
}

function describe(v: unknown): string {
  if (v instanceof Map) return `a dict of ${v.size} entries`;
  if (Array.isArray(v)) return `(${v.map(describe).join(', ')})`;
  if (v instanceof TorchTensor) return `a tensor ${v.size.join('x')}`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 37) + '...' : v);
  if (v === null) return 'None';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'an object';
  return String(v);
}

async function openZip(path: string): Promise<{ zip: yauzl.ZipFile; entries: Map<string, yauzl.Entry> }> {
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.openPromise(path, { lazyEntries: true, autoClose: false });
  } catch (err) {
    throw formatError(path, `not a readable zip archive (truncated or corrupt): ${(err as Error).message}`, err);
  }
  try {
    const entries = await new Promise<Map<string, yauzl.Entry>>((resolve, reject) => {
      const found = new Map<string, yauzl.Entry>();
      zip.on('entry', (e: yauzl.Entry) => {
        found.set(e.fileName, e);
        zip.readEntry();
      });
      zip.on('end', () => resolve(found));
      zip.on('error', reject);
      zip.readEntry();
    });
    return { zip, entries };
  } catch (err) {
    zip.close();
    throw formatError(path, `corrupt zip archive: ${(err as Error).message}`, err);
  }
}

/** The `<top>/` prefix of the archive's data.pkl, or undefined. */
function pickleEntry(entries: Map<string, yauzl.Entry>): string | undefined {
  return [...entries.keys()].find((n) => /^([^/]+\/)?data\.pkl$/.test(n));
}

/**
 * Reads a whole entry into a new buffer allocated at its final size. Stored entries (torch.save never compresses)
 * are read straight from the file at the offset yauzl found for them; compressed ones are inflated by yauzl.
 */
async function readEntry(
  zip: yauzl.ZipFile,
  entry: yauzl.Entry,
  path: string,
  fd: number,
  fileSize: number,
): Promise<Uint8Array> {
  const size = entry.uncompressedSize;
  try {
    if (entry.compressionMethod === 0 && !entry.isEncrypted()) {
      const { fileDataStart } = await zip.readLocalFileHeaderPromise(entry, { minimal: true });
      if (fileDataStart + size > fileSize)
        throw new Error(`its ${size} bytes at byte ${fileDataStart} run past the end of the file (${fileSize} bytes)`);
      const out = readAt(fd, size, fileDataStart);
      if (out.length !== size) throw new Error(`read ${out.length} of ${size} bytes`);
      return out;
    }
    const out = new Uint8Array(size);
    let at = 0;
    const stream = await zip.openReadStreamPromise(entry);
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (at + chunk.length > size) throw new Error(`more than the ${size} bytes declared`);
      out.set(chunk, at);
      at += chunk.length;
    }
    if (at !== size) throw new Error(`read ${at} of ${size} bytes`);
    return out;
  } catch (err) {
    throw formatError(
      path,
      `zip entry ${entry.fileName} cannot be read (truncated or corrupt archive): ${(err as Error).message}`,
      err,
    );
  }
}

async function openZipContainer(path: string): Promise<Container> {
  const { zip, entries } = await openZip(path);
  let fd: number | undefined;
  const close = () => {
    zip.close();
    if (fd !== undefined) closeSync(fd);
  };
  try {
    fd = openSync(path, 'r');
    const file = { fd, size: fstatSync(fd).size };
    const read = (entry: yauzl.Entry) => readEntry(zip, entry, path, file.fd, file.size);
    const pkl = pickleEntry(entries);
    if (!pkl)
      throw formatError(
        path,
        'zip archive without data.pkl: not a PyTorch file ' +
          `(entries: ${[...entries.keys()].slice(0, 6).join(', ') || 'none'})`,
      );
    const top = pkl.slice(0, -'data.pkl'.length);
    const pklEntry = entries.get(pkl)!;
    if (pklEntry.uncompressedSize > MAX_PICKLE_BYTES)
      throw formatError(path, `${pkl} is ${pklEntry.uncompressedSize} bytes; a state dict's pickle is far smaller`);
    let littleEndian = true;
    const order = entries.get(`${top}byteorder`);
    if (order) {
      const text = new TextDecoder().decode(await read(order)).trim();
      if (text !== 'little' && text !== 'big')
        throw formatError(path, `${top}byteorder says "${text.slice(0, 20)}", expected little or big`);
      littleEndian = text === 'little';
    }
    const source = pkl;
    const { persistentLoad } = storageRegistry(path, source, false);
    const root = unpickle(await read(pklEntry), 0, {
      source,
      path,
      globals: torchGlobals(path, source),
      persistentLoad,
    }).value;
    return {
      layout: `PyTorch zip archive (${top}data.pkl, ${top}data/<key>, ${littleEndian ? 'little' : 'big'}-endian)`,
      root,
      littleEndian,
      async storageBytes(key) {
        const entry = entries.get(`${top}data/${key}`);
        if (!entry)
          throw formatError(path, `storage ${top}data/${key}, referenced by ${pkl}, is missing from the archive`);
        return read(entry);
      },
      close,
    };
  } catch (err) {
    close();
    throw err;
  }
}

/** Reads exactly `length` bytes at `position` into a new buffer. */
function readAt(fd: number, length: number, position: number): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, out, done, Math.min(length - done, 1 << 30), position + done);
    if (n === 0) break;
    done += n;
  }
  return out.subarray(0, done);
}

function openLegacyContainer(path: string): Container {
  const fd = openForReading(path);
  try {
    const size = fstatSync(fd).size;
    const source = 'legacy torch.save stream';
    const registry = storageRegistry(path, source, true);
    // The pickles come first and are small: read a head, and more of the file only if they do not fit.
    let headLength = Math.min(size, 1 << 20);
    let parsed: { root: unknown; keys: string[]; end: number; littleEndian: boolean };
    for (;;) {
      const head = readAt(fd, headLength, 0);
      try {
        parsed = parseLegacyPickles(head, path, source, registry.persistentLoad);
        break;
      } catch (err) {
        if (err instanceof TruncatedPickleError && headLength < size) {
          headLength = Math.min(size, headLength * 8);
          continue;
        }
        throw err;
      }
    }
    // Storage records follow in key order: an 8-byte element count, then the elements.
    const offsets = new Map<string, { at: number; bytes: number }>();
    let pos = parsed.end;
    for (const key of parsed.keys) {
      const storage = registry.storages.get(key);
      if (!storage) throw formatError(path, `${source}: storage key ${key} is listed but no tensor uses it`);
      const countBytes = readAt(fd, 8, pos);
      if (countBytes.length < 8)
        throw formatError(
          path,
          `truncated: storage ${key}'s element count at byte ${pos} runs past the end (${size} bytes)`,
        );
      const count = new DataView(countBytes.buffer, countBytes.byteOffset, 8).getBigInt64(0, parsed.littleEndian);
      const bytes = Number(count) * ELEMENT_SIZE[storage.dtype];
      if (count < 0n || !Number.isSafeInteger(bytes))
        throw formatError(path, `${source}: storage ${key} declares ${count} elements`);
      if (pos + 8 + bytes > size) {
        throw formatError(
          path,
          `truncated: storage ${key} (${count} ${storage.dtype} elements, ${bytes} bytes at ` +
            `byte ${pos + 8}) runs past the end of the file (${size} bytes)`,
        );
      }
      offsets.set(key, { at: pos + 8, bytes });
      pos += 8 + bytes;
    }
    const open = fd;
    return {
      layout: `PyTorch legacy serialization (torch.save < 1.6, ${parsed.littleEndian ? 'little' : 'big'}-endian)`,
      root: parsed.root,
      littleEndian: parsed.littleEndian,
      async storageBytes(key) {
        const where = offsets.get(key);
        if (!where) throw formatError(path, `${source}: storage ${key} is used by a tensor but not stored in the file`);
        return readAt(open, where.bytes, where.at);
      },
      close: () => closeSync(open),
    };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

function parseLegacyPickles(head: Uint8Array, path: string, source: string, persistentLoad: (pid: unknown) => unknown) {
  const plain = { path, globals: new Map() };
  const magic = unpickle(head, 0, { ...plain, source: `${source} magic number` });
  if (magic.value !== LEGACY_MAGIC)
    throw formatError(path, `${source}: wrong magic number ${String(magic.value)}; not a PyTorch file`);
  const version = unpickle(head, magic.end, { ...plain, source: `${source} protocol version` });
  if (version.value !== LEGACY_PROTOCOL_VERSION)
    throw formatError(
      path,
      `${source}: protocol version ${String(version.value)}, expected ${LEGACY_PROTOCOL_VERSION}`,
    );
  const sysInfo = unpickle(head, version.end, { ...plain, source: `${source} sys info` });
  const littleEndian = !(sysInfo.value instanceof Map && sysInfo.value.get('little_endian') === false);
  const object = unpickle(head, sysInfo.end, { path, source, globals: torchGlobals(path, source), persistentLoad });
  const keys = unpickle(head, object.end, { ...plain, source: `${source} storage keys` });
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string'))
    throw formatError(path, `${source}: storage keys are not a list of strings`);
  return { root: object.value, keys: keys.value as string[], end: keys.end, littleEndian };
}

// ---------------------------------------------------------------------------------------------------------------
// State dict -> layers.

/** The dict of tensors: the root, or the one under a checkpoint's `state_dict`/`model` key. */
function stateDict(root: unknown, path: string): Map<string, TorchTensor> {
  let dict = root;
  if (dict instanceof Map) {
    for (const key of WRAPPER_KEYS) {
      const inner = dict.get(key);
      if (inner instanceof Map && [...inner.values()].some((v) => v instanceof TorchTensor)) {
        dict = inner;
        break;
      }
    }
  }
  if (!(dict instanceof Map))
    throw formatError(path, `expected a state dict (a dict of tensors), the file holds ${describe(root)}`);
  const tensors = new Map<string, TorchTensor>();
  for (const [k, v] of dict) if (typeof k === 'string' && v instanceof TorchTensor) tensors.set(k, v);
  if (tensors.size === 0)
    throw formatError(path, `expected a state dict of tensors, the file holds ${describe(root)} without tensors`);
  return tensors;
}

interface NamedLayer {
  readonly prefix: string;
  readonly weight: [string, TorchTensor];
  readonly bias: [string, TorchTensor];
  readonly kind: 'conv' | 'fc';
}

/**
 * Weight-bearing layers: by VGG-Face name when the dict uses vgg_face_dag's names (conv1_1.weight ... fc8.bias),
 * otherwise in the dict's order (`features.0`, `classifier.6`, `module.` prefixes ...).
 */
function namedLayers(tensors: Map<string, TorchTensor>, path: string): NamedLayer[] {
  const groups = new Map<string, { weight?: [string, TorchTensor]; bias?: [string, TorchTensor] }>();
  for (const [name, t] of tensors) {
    const m = /^(.*)\.(weight|bias)$/.exec(name);
    if (!m) continue;
    const g = groups.get(m[1]) ?? {};
    g[m[2] as 'weight' | 'bias'] = [name, t];
    groups.set(m[1], g);
  }
  const byVggName = LAYER_NAMES.every((n) => groups.has(n));
  const ordered = byVggName ? LAYER_NAMES.map((n) => [n, groups.get(n)!] as const) : [...groups];
  return ordered.map(([prefix, g]) => {
    const topology = (problem: string) => new VggFaceError('E_TOPOLOGY', `${path}: ${problem}`, { input: path });
    if (!g.weight) throw topology(`${prefix}.bias has no ${prefix}.weight`);
    if (!g.bias) throw topology(`${prefix}.weight has no ${prefix}.bias`);
    const rank = g.weight[1].size.length;
    if (rank !== 4 && rank !== 2) {
      throw topology(
        `${g.weight[0]} has shape ${g.weight[1].size.join('x')}; VGG-Face has ` +
          'only conv (out, in, kh, kw) and fc (out, in) weights',
      );
    }
    return { prefix, weight: g.weight, bias: g.bias, kind: rank === 4 ? 'conv' : 'fc' };
  });
}

async function readPytorch(path: string): Promise<WeightSet> {
  let head: Uint8Array;
  try {
    head = readFirstBytes(path, 32);
  } catch (err) {
    throw fileError(path, err);
  }
  const container = isLegacy(head) ? openLegacyContainer(path) : isZip(head) ? await openZipContainer(path) : undefined;
  if (!container) throw formatError(path, 'not a PyTorch file: neither a zip archive nor a legacy torch.save stream');
  try {
    const layers = namedLayers(stateDict(container.root, path), path);
    // Storages are read when first needed and dropped after their last tensor: a float32 tensor keeps its
    // storage alive as a view, a converted one lets it go.
    const uses = new Map<string, number>();
    for (const l of layers)
      for (const [, t] of [l.weight, l.bias]) uses.set(t.storage.key, (uses.get(t.storage.key) ?? 0) + 1);
    const loaded = new Map<string, Uint8Array>();
    const data = async ([name, t]: [string, TorchTensor]) => {
      const key = t.storage.key;
      let bytes = loaded.get(key);
      if (!bytes) loaded.set(key, (bytes = await container.storageBytes(key)));
      const values = tensorToFloat32(t, bytes, container.littleEndian, path, name);
      const left = uses.get(key)! - 1;
      uses.set(key, left);
      if (left === 0) loaded.delete(key);
      return tensor(t.size, values);
    };
    const found: FoundLayer[] = [];
    for (const l of layers) {
      found.push({ sourceName: l.prefix, kind: l.kind, weight: await data(l.weight), bias: await data(l.bias) });
    }
    const dtypes = new Set(layers.flatMap((l) => [l.weight[1].storage.dtype, l.bias[1].storage.dtype]));
    return assembleWeightSet(
      { format: 'pytorch', layout: container.layout, sourceDtype: [...dtypes].join('+'), inputChannelOrder: 'RGB' },
      found,
      path,
    ).weights;
  } finally {
    container.close();
  }
}

async function matchPytorch(path: string): Promise<true | string> {
  try {
    if (isLegacy(readFirstBytes(path, 32))) return true;
    const { zip, entries } = await openZip(path);
    zip.close();
    return pickleEntry(entries)
      ? true
      : `a zip archive without data.pkl (entries: ${[...entries.keys()].slice(0, 6).join(', ') || 'none'})`;
  } catch (err) {
    return err instanceof VggFaceError ? err.message.replace(`${path}: `, '') : String(err);
  }
}

export const pytorchReader: WeightReader = {
  id: 'pytorch',
  description: 'PyTorch .pth state dict (zip archive, or the legacy pre-1.6 stream)',
  sniff: (head) => isZip(head) || isLegacy(head),
  matchStructure: matchPytorch,
  read: readPytorch,
};
