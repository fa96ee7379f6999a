// What the two vggface pages share: `/` (web/app.js, which talks to this server's API) and `/local` (web/local.js,
// which runs the model in the browser). Building elements, showing a photo with its faces, drop zones, and the
// verify, gallery and search sections both pages have, with the same ids (web/index.html, web/local.html): each
// page only says how it compares two photos, adds photos to its gallery and searches a photo.

export const $ = (selector, root = document) => root.querySelector(selector);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

export const fmt = (x) => (Number.isFinite(x) ? x.toFixed(4) : String(x));
export const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

export function status(target, text, cls = 'busy') {
  target.replaceChildren(el('span', { class: cls }, text));
}

/**
 * Shows a photo in a figure, with a box on each face given, in pixels of the photo: of `size` ({width, height}, the
 * photo as the server decoded it) where given, else of the image as the browser decodes it, once it has.
 */
export function showPhoto(figure, file, faces = [], size) {
  figure.replaceChildren();
  const url = URL.createObjectURL(file);
  const img = el('img', { src: url, alt: file.name });
  const boxes = (width, height) => {
    for (const f of faces) {
      const b = f.box;
      const box = el('div', { class: 'face-box', title: `score ${fmt(f.score)}` });
      box.style.left = `${(100 * b.x) / width}%`;
      box.style.top = `${(100 * b.y) / height}%`;
      box.style.width = `${(100 * b.width) / width}%`;
      box.style.height = `${(100 * b.height) / height}%`;
      figure.append(box);
    }
  };
  img.addEventListener(
    'load',
    () => {
      URL.revokeObjectURL(url);
      if (!size) boxes(img.naturalWidth, img.naturalHeight);
    },
    { once: true },
  );
  figure.append(img);
  if (size) boxes(size.width, size.height);
  figure.hidden = false;
}

/** Makes a drop zone: a picked or dropped file calls onFile. */
export function dropZone(zone, onFile) {
  const input = $('input[type=file]', zone);
  input.addEventListener('change', () => input.files[0] && onFile(input.files[0]));
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const file = e.dataTransfer?.files?.[0];
    if (file) onFile(file);
  });
}

/** The verdict of a comparison against a threshold. */
export const sameVerdict = (verified) =>
  el(
    'div',
    { class: `verdict ${verified ? 'yes' : 'no'}`, 'data-verified': String(verified) },
    verified ? 'Same person' : 'Different people',
  );

/**
 * The two drop zones of #verify: each photo picked is shown; once both are, `compare(a, b)` runs, showing `busy`
 * meanwhile. It resolves with {faces: [faces of a, faces of b], sizes?: [size of a, size of b] (see showPhoto),
 * verdict: () => the elements #verdict shows}; a result is dropped when a newer pair was picked meanwhile.
 */
export function verifyPhotos(busy, compare) {
  const pair = [undefined, undefined];
  const verdict = $('#verdict');
  const zones = document.querySelectorAll('#verify .drop');
  async function verify() {
    const [a, b] = pair;
    status(verdict, busy);
    try {
      const r = await compare(a, b);
      if (pair[0] !== a || pair[1] !== b) return; // a newer pair is being compared
      zones.forEach((zone, i) => showPhoto($('.photo', zone), pair[i], r.faces[i], r.sizes?.[i]));
      verdict.replaceChildren(...r.verdict());
    } catch (err) {
      status(verdict, err.message, 'error');
    }
  }
  zones.forEach((zone) => {
    const slot = Number(zone.dataset.slot);
    dropZone(zone, (file) => {
      pair[slot] = file;
      showPhoto($('.photo', zone), file);
      if (pair[0] && pair[1]) void verify();
    });
  });
}

/** An item of #identities: the identity, its number of photos and a button that removes it. */
export const identityItem = (identity, photos, onRemove, attrs = {}) =>
  el(
    'li',
    { 'data-identity': identity, ...attrs },
    el('span', { class: 'name' }, identity),
    el('span', { class: 'numbers' }, plural(photos, 'photo')),
    el('button', { class: 'link', type: 'button', title: `remove ${identity}`, onclick: onRemove }, 'remove'),
  );

/**
 * #gallery-form: a name and photos. `add(identity, files)` resolves with the elements #gallery-result shows
 * (`busy(files)` meanwhile, the error if it fails); then `refresh()` lists the gallery again.
 */
export function galleryForm(busy, add, refresh) {
  const result = $('#gallery-result');
  $('#gallery-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const identity = $('#gallery-id').value.trim();
    const files = [...$('#gallery-files').files];
    if (!identity || files.length === 0) return;
    status(result, busy(files));
    try {
      result.replaceChildren(...(await add(identity, files)));
    } catch (err) {
      status(result, err.message, 'error');
    }
    await refresh();
  });
}

/** Who a search found: `identity` (shown as `text`), or nobody (undefined). */
export const searchVerdict = (identity, text = identity) =>
  el(
    'div',
    { class: `verdict ${identity !== undefined ? 'yes' : 'no'}`, 'data-identity': identity ?? 'unknown' },
    identity !== undefined ? text : 'Nobody in the gallery',
  );

/** A row of the matches table: `m` is {identity, distance, source}; `match` says whether it is within the threshold. */
export const matchRow = (m, match, attrs = {}) =>
  el(
    'tr',
    { 'data-identity': m.identity, ...attrs },
    el('td', {}, m.identity),
    el('td', {}, fmt(m.distance)),
    el('td', {}, match ? 'match' : ''),
    el('td', { class: 'numbers' }, m.source),
  );

export const matchesTable = (rows) =>
  el(
    'table',
    {},
    el(
      'thead',
      {},
      el('tr', {}, el('th', {}, 'identity'), el('th', {}, 'distance'), el('th', {}, ''), el('th', {}, 'closest photo')),
    ),
    el('tbody', {}, ...rows),
  );

/**
 * The drop zone of #search: the photo picked is shown and `search(file, show)` runs, showing `busy` meanwhile; it
 * resolves with the elements #search-result shows, and calls `show(faces, size)` to box the faces on the photo.
 */
export function searchPhoto(busy, search) {
  const result = $('#search-result');
  const zone = $('#search .drop');
  dropZone(zone, async (file) => {
    const figure = $('.photo', zone);
    showPhoto(figure, file);
    status(result, busy);
    try {
      result.replaceChildren(...(await search(file, (faces, size) => showPhoto(figure, file, faces, size))));
    } catch (err) {
      status(result, err.message, 'error');
    }
  });
}

// .npy, as `vggface describe -o FILE.npy` writes it (src/output/npy.ts): NumPy format 1.0, a float32 ('<f4')
// C-order matrix, one row per face. Written here without Node's Buffer, byte for byte the same as Node's file.

/** The magic of every .npy: \x93NUMPY. */
const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];

/**
 * A float32 .npy of `vectors` (arrays of `columns` numbers), as a Uint8Array. The header is padded with spaces to
 * a multiple of 64 bytes and ends with a newline, as NumPy writes it: 128 bytes for any shape a gallery has,
 * which is the fixed size Node writes, so the two files are identical.
 */
export function npyEncode(vectors, columns) {
  vectors.forEach((v, i) => {
    if (v.length !== columns)
      throw new Error(`Expected ${columns} values for row ${i + 1} of the .npy but received ${v.length}`);
  });
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${vectors.length}, ${columns}), }`;
  const headerBytes = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const out = new Uint8Array(headerBytes + vectors.length * columns * 4);
  const view = new DataView(out.buffer);
  out.set(NPY_MAGIC);
  out[6] = 1; // format version 1.0: a 2-byte header length
  out[7] = 0;
  view.setUint16(8, headerBytes - 10, true);
  for (let i = 0; i < dict.length; i++) out[10 + i] = dict.charCodeAt(i);
  out.fill(0x20, 10 + dict.length, headerBytes - 1);
  out[headerBytes - 1] = 0x0a;
  // DataView with littleEndian true: '<f4' whatever the byte order of this machine.
  let at = headerBytes;
  for (const v of vectors) {
    for (let c = 0; c < columns; c++, at += 4) view.setFloat32(at, v[c], true);
  }
  return out;
}

/**
 * Reads a .npy (`name` is its file name, for the messages) that must be a 2-D float32 C-order matrix, with
 * exactly its data after the header: {rows, columns, data: Float32Array of rows * columns}. Throws what is wrong.
 */
export function npyDecode(bytes, name) {
  if (bytes.length < 10 || NPY_MAGIC.some((b, i) => bytes[i] !== b))
    throw new Error(`${name}: not a .npy file (Expected the magic \\x93NUMPY at its start but received other bytes)`);
  const major = bytes[6];
  if (major < 1 || major > 3)
    throw new Error(`${name}: Expected .npy format version 1, 2 or 3 but received ${major}.${bytes[7]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Version 1 has a 2-byte header length, versions 2 and 3 a 4-byte one.
  const start = major === 1 ? 10 : 12;
  if (bytes.length < start) throw new Error(`${name}: truncated: the file ends inside its .npy header`);
  const length = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (start + length > bytes.length)
    throw new Error(
      `${name}: truncated: its header says ${length} bytes but the file has ${bytes.length - start} after the magic`,
    );
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + length)).trim();
  const field = (key, value) => new RegExp(`['"]${key}['"]\\s*:\\s*${value}`).exec(header)?.[1];
  const descr = field('descr', `'([^']*)'`);
  const fortran = field('fortran_order', '(True|False)');
  const shape = field('shape', '\\(([^)]*)\\)');
  if (!header.startsWith('{') || !header.endsWith('}') || descr === undefined || !fortran || shape === undefined)
    throw new Error(
      `${name}: Expected a .npy header {'descr': ..., 'fortran_order': ..., 'shape': (...)} ` +
        `but received ${JSON.stringify(header.slice(0, 200))}`,
    );
  if (descr !== '<f4') throw new Error(`${name}: Expected float32 values (descr '<f4') but received descr '${descr}'`);
  if (fortran === 'True') throw new Error(`${name}: Expected a C-order matrix but received one in Fortran order`);
  const dims = shape
    .split(',')
    .map((d) => d.trim())
    .filter((d) => d !== '');
  if (dims.length !== 2 || !dims.every((d) => /^\d+$/.test(d)))
    throw new Error(`${name}: Expected a 2-D matrix (one row per face) but received shape (${dims.join(', ')})`);
  const [rows, columns] = dims.map(Number);
  const expected = rows * columns * 4;
  const have = bytes.length - start - length;
  if (have < expected)
    throw new Error(
      `${name}: truncated: its shape (${rows}, ${columns}) needs ${expected} bytes of float32 data but it has ${have}`,
    );
  if (have > expected)
    throw new Error(
      `${name}: Expected ${expected} bytes of float32 data for its shape (${rows}, ${columns}) but received ${have}`,
    );
  const data = new Float32Array(rows * columns);
  for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(start + length + 4 * i, true);
  return { rows, columns, data };
}
