/**
 * The .npy encoder and decoder of the page /local (web/common.js, plain JavaScript without Node's Buffer), in Node:
 * its file of N descriptors is byte for byte what `vggface describe -o FILE.npy` writes for the same Float32Arrays
 * (src/output/descriptor-sink.ts), Node's reader and NumPy's header rules accept it (and NumPy itself, where
 * python3 has it), and the decoder refuses what is not a 2-D float32 C-order matrix with exactly its data.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { openDescriptorSink } from '../src/output/descriptor-sink.js';
import { npyHeader, parseNpyHeader } from '../src/output/npy.js';
import { ROOT, tempDir } from './helpers.js';

interface Decoded {
  rows: number;
  columns: number;
  data: Float32Array;
}
interface PageNpy {
  npyEncode(vectors: ArrayLike<number>[], columns: number): Uint8Array;
  npyDecode(bytes: Uint8Array, name: string): Decoded;
}
// web/common.js touches `document` only inside its functions, so Node can import it as the browser does.
const page = (await import(pathToFileURL(join(ROOT, 'web', 'common.js')).href)) as PageNpy;

/** `rows` descriptors of `columns` values: deterministic, signed, with values float32 must keep exactly. */
function descriptors(rows: number, columns: number): Float32Array[] {
  const special = [0, -0, 1, -1, 1.401298464324817e-45, 3.4028234663852886e38, 1.1754943508222875e-38, 0.1];
  return Array.from({ length: rows }, (_, r) =>
    Float32Array.from({ length: columns }, (_, c) =>
      r === 0 && c < special.length ? special[c] : Math.sin(r * 7919 + c * 104729) / (1 + (c % 13)),
    ),
  );
}

/** What Node's describe writer puts in FILE.npy for these rows (one image per row, as the page's gallery has). */
async function nodeNpy(dir: string, rows: Float32Array[], columns: number): Promise<Buffer> {
  const path = join(dir, `node-${rows.length}x${columns}.npy`);
  const sink = await openDescriptorSink({
    path,
    format: 'npy',
    resume: false,
    overwrite: true,
    settings: { dimension: columns, layer: 'fc7', normalized: true, detector: 'yunet' },
    stdout: new PassThrough(),
  });
  for (const [i, descriptor] of rows.entries())
    await sink.write({ image: `face-${i}.jpg`, detected: false, rows: [{ descriptor }] });
  await sink.close();
  return readFileSync(path);
}

/** NumPy's rules for a version 1.0 header (numpy/lib/format.py): its length, alignment, newline and dictionary. */
function checkNumpyHeader(bytes: Uint8Array, rows: number, columns: number): void {
  const b = Buffer.from(bytes);
  assert.equal(b.toString('latin1', 0, 6), '\x93NUMPY', 'the magic');
  assert.deepEqual([b[6], b[7]], [1, 0], 'format version 1.0');
  const length = b.readUInt16LE(8);
  assert.equal((10 + length) % 64, 0, `Expected a header padded to a multiple of 64 bytes but received ${10 + length}`);
  const header = b.toString('latin1', 10, 10 + length);
  assert.equal(header.at(-1), '\n', 'the header ends with a newline');
  assert.equal(header.trimEnd(), `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${columns}), }`);
}

const numpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

test("the page's .npy of N descriptors is byte for byte the file Node's describe writer makes of them", async (t) => {
  const dir = tempDir(t, 'vggface-local-npy-');
  for (const [rows, columns] of [
    [0, 32],
    [1, 32],
    [3, 32],
    [257, 32],
    [2, 4096],
    [5, 2622],
  ]) {
    const vectors = descriptors(rows, columns);
    const fromPage = page.npyEncode(vectors, columns);
    const fromNode = await nodeNpy(dir, vectors, columns);
    assert.equal(fromPage.length, 128 + rows * columns * 4, `${rows}x${columns}: the size of the page's file`);
    assert.ok(
      Buffer.from(fromPage).equals(fromNode),
      `${rows}x${columns}: Expected Node's ${fromNode.length} bytes but received ${fromPage.length} other bytes`,
    );
    assert.ok(Buffer.from(fromPage.subarray(0, 128)).equals(npyHeader(rows, columns)), 'the header is Node’s');
    assert.deepEqual(parseNpyHeader(fromPage), { rows, columns, headerBytes: 128 }, "Node's reader accepts it");
    checkNumpyHeader(fromPage, rows, columns);
    // And back: the same float32 values, bit for bit (-0 included).
    const back = page.npyDecode(fromPage, 'x.npy');
    assert.equal(back.rows, rows);
    assert.equal(back.columns, columns);
    const flat = new Float32Array(rows * columns);
    vectors.forEach((v, r) => flat.set(v, r * columns));
    assert.ok(Buffer.from(back.data.buffer).equals(Buffer.from(flat.buffer)), `${rows}x${columns}: values`);
  }
  // Plain arrays of numbers (what the gallery keeps in IndexedDB) give the same bytes as Float32Arrays.
  const vectors = descriptors(4, 32);
  assert.ok(
    Buffer.from(
      page.npyEncode(
        vectors.map((v) => Array.from(v)),
        32,
      ),
    ).equals(Buffer.from(page.npyEncode(vectors, 32))),
  );
  assert.throws(() => page.npyEncode([new Float32Array(32), new Float32Array(31)], 32), {
    message: 'Expected 32 values for row 2 of the .npy but received 31',
  });
});

test("NumPy loads the page's .npy as the float32 matrix it was given, and the page reads NumPy's own file", {
  skip: numpy ? false : 'python3 with numpy is not installed here',
}, (t) => {
  const dir = tempDir(t, 'vggface-local-npy-');
  const vectors = descriptors(3, 32);
  writeFileSync(join(dir, 'page.npy'), page.npyEncode(vectors, 32));
  const script =
    'import numpy as np, sys\n' +
    "a = np.load(sys.argv[1] + '/page.npy')\n" +
    "print(a.dtype.str, a.shape, a.flags['C_CONTIGUOUS'], repr(float(a[2, 5])))\n" +
    "np.save(sys.argv[1] + '/numpy.npy', a)\n";
  const r = spawnSync('python3', ['-c', script, dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, `numpy: ${r.stderr}`);
  assert.equal(r.stdout.trim(), `<f4 (3, 32) True ${String(vectors[2][5])}`);
  const saved = readFileSync(join(dir, 'numpy.npy'));
  const back = page.npyDecode(saved, 'numpy.npy');
  assert.deepEqual([back.rows, back.columns], [3, 32]);
  assert.deepEqual(Array.from(back.data.subarray(64, 96)), Array.from(vectors[2]));
  assert.ok(saved.equals(Buffer.from(page.npyEncode(vectors, 32))), "NumPy's file is the page's, byte for byte");
});

test('the page refuses a .npy that is not a whole 2-D float32 C-order matrix, naming the file and the problem', () => {
  const good = Buffer.from(page.npyEncode(descriptors(2, 4), 4));
  /** A file with the header `dict` (padded as NumPy does) and `data` bytes after it. */
  const withHeader = (dict: string, data: number, version = 1) => {
    const start = version === 1 ? 10 : 12;
    const total = Math.ceil((start + dict.length + 1) / 64) * 64;
    const b = Buffer.alloc(total + data, 0x20);
    b.write('\x93NUMPY', 0, 'latin1');
    b[6] = version;
    b[7] = 0;
    if (version === 1) b.writeUInt16LE(total - start, 8);
    else b.writeUInt32LE(total - start, 8);
    b.write(dict, start, 'latin1');
    b[total - 1] = 0x0a;
    b.fill(0, total);
    return b;
  };
  const refused: [Buffer, string][] = [
    [
      Buffer.from('not a npy file at all'),
      'not a .npy file (Expected the magic \\x93NUMPY at its start but received other bytes)',
    ],
    [good.subarray(0, 8), 'not a .npy file (Expected the magic \\x93NUMPY at its start but received other bytes)'],
    [
      Buffer.concat([good.subarray(0, 6), Buffer.from([4, 0]), good.subarray(8)]),
      'Expected .npy format version 1, 2 or 3 but received 4.0',
    ],
    [good.subarray(0, 100), 'truncated: its header says 118 bytes but the file has 90 after the magic'],
    [good.subarray(0, good.length - 1), 'truncated: its shape (2, 4) needs 32 bytes of float32 data but it has 31'],
    [Buffer.concat([good, Buffer.alloc(4)]), 'Expected 32 bytes of float32 data for its shape (2, 4) but received 36'],
    [
      withHeader("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 4), }", 64),
      "Expected float32 values (descr '<f4') but received descr '<f8'",
    ],
    [
      withHeader("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 4), }", 32),
      "Expected float32 values (descr '<f4') but received descr '>f4'",
    ],
    [
      withHeader("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 4), }", 8),
      "Expected float32 values (descr '<f4') but received descr '|u1'",
    ],
    [
      withHeader("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 4), }", 32),
      'Expected a C-order matrix but received one in Fortran order',
    ],
    [
      withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (8,), }", 32),
      'Expected a 2-D matrix (one row per face) but received shape (8)',
    ],
    [
      withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }", 32),
      'Expected a 2-D matrix (one row per face) but received shape (2, 2, 2)',
    ],
    [
      withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4),
      'Expected a 2-D matrix (one row per face) but received shape ()',
    ],
    [
      withHeader('not a dictionary', 0),
      "Expected a .npy header {'descr': ..., 'fortran_order': ..., 'shape': (...)} but received \"not a dictionary\"",
    ],
  ];
  for (const [bytes, message] of refused) {
    assert.throws(() => page.npyDecode(bytes, 'bad.npy'), { message: `bad.npy: ${message}` });
  }
  // Versions 2 and 3 (a 4-byte header length) are read too, as NumPy writes them for long headers.
  const v2 = withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }", 8, 2);
  v2.writeFloatLE(1.5, v2.length - 8);
  v2.writeFloatLE(-2.25, v2.length - 4);
  assert.deepEqual(Array.from(page.npyDecode(v2, 'v2.npy').data), [1.5, -2.25]);
});
