// The vggface page that runs in the browser (/local): verify two photos and a gallery kept in IndexedDB, with
// vggface/browser (onnxruntime-web in a Web Worker). Photos are read from the file inputs and never sent anywhere:
// the only requests are for the page and its scripts, the library, the model and the face detector.
import { VggFace, distance } from '/vggface/browser/vggface.js';
import {
  $,
  el,
  fmt,
  galleryForm,
  identityItem,
  matchesTable,
  matchRow,
  npyDecode,
  npyEncode,
  plural,
  sameVerdict,
  searchPhoto,
  searchVerdict,
  status,
  verifyPhotos,
} from '/common.js';

/**
 * deepface's cosine threshold for VGG-Face (src/verify/thresholds.ts): the only published one, for deepface-mode
 * models.
 */
const DEEPFACE_COSINE = 0.68;

// The model: ?model=NAME picks one of /models/ (the server's --models folder); the int8 model is the default.
const modelSelect = $('#model');
const modelStatus = $('#model-status');
const progress = $('#model-progress');
const asked = new URLSearchParams(location.search).get('model');
if (asked && ![...modelSelect.options].some((o) => o.value === asked))
  modelSelect.append(el('option', { value: asked }, asked));
if (asked) modelSelect.value = asked;

let loading; // Promise<VggFace> of the model chosen now
let chosen; // what it was loaded from: a name in /models/ or a File
function loadModel() {
  const source = $('#model-file').files[0] ?? modelSelect.value;
  if (loading && chosen === source) return loading;
  const previous = loading;
  chosen = source;
  const label = typeof source === 'string' ? source : source.name;
  status(modelStatus, `Loading ${label}…`);
  progress.hidden = false;
  progress.removeAttribute('value');
  loading = (async () => {
    await previous?.then(
      (m) => m.close(),
      () => undefined,
    );
    const model = await VggFace.load({
      model: typeof source === 'string' ? `/models/${encodeURIComponent(source)}` : source,
      detectorModel: '/detector.onnx',
      cache: 'vggface-models',
      onDownloadProgress: ({ received, total }) => {
        if (total) {
          progress.max = total;
          progress.value = received;
        }
      },
    });
    progress.hidden = true;
    const i = model.info;
    modelStatus.replaceChildren(
      el(
        'span',
        { class: 'numbers', 'data-loaded': label },
        `${label}: ${i.precision}, ${i.preprocessing} ` +
          `preprocessing, ${i.descriptorSize}-d; ${model.backend}, ${plural(model.threads, 'thread')}` +
          `${self.crossOriginIsolated ? '' : ' (not cross-origin isolated)'}`,
      ),
    );
    return model;
  })();
  loading.catch((err) => {
    progress.hidden = true;
    status(modelStatus, err.message, 'error');
  });
  return loading;
}
modelSelect.addEventListener('change', () => {
  $('#model-file').value = '';
  void loadModel();
});
$('#model-file').addEventListener('change', () => void loadModel());
$('#model-form').addEventListener('submit', (e) => e.preventDefault());

/** The model's key in the gallery: descriptors of other networks (or preprocessings) are not comparable. */
function modelKey(model) {
  const m = model.info.metadata;
  return `${m['vggface.weights.identity'] ?? m['vggface.source.sha256'] ?? 'unknown'}-${model.info.preprocessing}`;
}

/** The threshold typed in, else deepface's for deepface-mode models, else none (the distance is shown alone). */
function thresholdFor(model) {
  const typed = $('#threshold').value.trim();
  if (typed !== '') {
    const t = Number(typed);
    if (!Number.isFinite(t) || t < 0)
      throw new Error(`Expected a number >= 0 for the threshold but received ${JSON.stringify(typed)}`);
    return t;
  }
  return model.info.preprocessing === 'deepface' ? DEEPFACE_COSINE : undefined;
}

/** The largest face of each photo, described here; throws the photo's error (no face, not an image). */
async function describe(model, files) {
  const out = [];
  for await (const r of model.describePhotos(files)) {
    if (r.error) throw r.error;
    out.push(r);
  }
  return out;
}

// Verify.
verifyPhotos('Comparing, in this browser…', async (a, b) => {
  const model = await loadModel();
  const [x, y] = await describe(model, [a, b]);
  return {
    faces: [[x.face], [y.face]],
    verdict: () => {
      const d = distance(x.descriptor, y.descriptor, 'cosine');
      const t = thresholdFor(model);
      const numbers = el(
        'div',
        { class: 'numbers', 'data-distance': String(d) },
        t === undefined
          ? `cosine distance ${fmt(d)} (no threshold for this model: type one above)`
          : `cosine distance ${fmt(d)} ${d <= t ? '≤' : '>'} threshold ${fmt(t)}`,
      );
      return [t === undefined ? el('div', { class: 'verdict' }, 'Compared') : sameVerdict(d <= t), numbers];
    },
  };
});

// The gallery: one IndexedDB record per face, {model, identity, name, descriptor}; only the descriptor is kept.
const DB_NAME = 'vggface-local';
const STORE = 'faces';
const db = new Promise((resolve, reject) => {
  const req = indexedDB.open(DB_NAME, 1);
  req.onupgradeneeded = () =>
    req.result.createObjectStore(STORE, { keyPath: 'id', autoIncrement: true }).createIndex('model', 'model');
  req.onsuccess = () => resolve(req.result);
  req.onerror = () => reject(new Error(`the browser refused its database (IndexedDB): ${req.error?.message}`));
});
/** Runs `fn` on the store in one transaction; resolves with the result of the request it returns, once committed. */
function tx(mode, fn) {
  return db.then(
    (d) =>
      new Promise((resolve, reject) => {
        const t = d.transaction(STORE, mode);
        const req = fn(t.objectStore(STORE));
        t.oncomplete = () => resolve(req?.result);
        t.onerror = () => reject(t.error);
        t.onabort = () => reject(t.error ?? new Error('the gallery transaction was aborted'));
      }),
  );
}
const facesOf = (key) => tx('readonly', (s) => s.index('model').getAll(key));
const addFaces = (records) => tx('readwrite', (s) => void records.forEach((r) => s.add(r)));
const removeIdentity = async (key, identity) => {
  const ids = (await facesOf(key)).filter((f) => f.identity === identity).map((f) => f.id);
  await tx('readwrite', (s) => void ids.forEach((id) => s.delete(id)));
  return ids.length;
};

const galleryResult = $('#gallery-result');
const identities = $('#identities');

async function refreshIdentities() {
  const model = await loading?.catch(() => undefined);
  const faces = model ? await facesOf(modelKey(model)) : [];
  const counts = new Map();
  for (const f of faces) counts.set(f.identity, (counts.get(f.identity) ?? 0) + 1);
  identities.replaceChildren();
  if (counts.size === 0)
    identities.append(el('li', { class: 'empty' }, model ? 'None yet.' : 'Load a model to see its gallery.'));
  for (const [identity, n] of [...counts].sort((a, b) => a[0].localeCompare(b[0]))) {
    identities.append(identityItem(identity, n, () => remove(identity), { 'data-faces': String(n) }));
  }
}

async function remove(identity) {
  const model = await loadModel();
  status(
    galleryResult,
    `Removed ${identity} (${plural(await removeIdentity(modelKey(model), identity), 'photo')}).`,
    'numbers',
  );
  await refreshIdentities();
}

galleryForm(
  (files) => `Describing ${plural(files.length, 'photo')}, in this browser…`,
  async (identity, files) => {
    const model = await loadModel();
    const described = await describe(model, files);
    const key = modelKey(model);
    await addFaces(
      described.map((r, i) => ({ model: key, identity, name: files[i].name, descriptor: Array.from(r.descriptor) })),
    );
    return [
      el('div', { class: 'numbers', 'data-added': String(described.length) }, `${identity}: ${described.length} added`),
    ];
  },
  refreshIdentities,
);

// Export and import, as JSON: {"format": "vggface-gallery", "version": 1, "model": {...}, "faces": [{identity, name,
// descriptor}]}; or as `vggface describe -o FILE.npy` writes descriptors: FILE.npy, a float32 matrix of one row per
// face, and FILE.npy.index.jsonl saying whose each row is (see npyIndex).
const EXPORT_NAME = 'vggface-gallery';

/** What an export says of the model its descriptors are of: import refuses those of another. */
function modelOf(model) {
  const i = model.info;
  return {
    key: modelKey(model),
    preprocessing: i.preprocessing,
    precision: i.precision,
    descriptorSize: i.descriptorSize,
  };
}

function download(name, data, type) {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * The index of an .npy export, in the format of describe's (src/output/descriptor-sink.ts): its first line is
 * describe's header ({"vggface": "describe-index", "format": "npy", dimension, layer, normalized, detector}: the page
 * describes the largest face found by the server's YuNet, fc7, L2-normalised) plus the model, which describe's lacks;
 * then one line per row as describe's, {"image", "rows": [start, end]}, plus its identity. No "faces" (the boxes
 * describe adds): the gallery keeps only descriptors.
 */
function npyIndex(faces, model) {
  const header = {
    vggface: 'describe-index',
    format: 'npy',
    dimension: model.descriptorSize,
    layer: 'fc7',
    normalized: true,
    detector: 'yunet',
    model,
  };
  const lines = faces.map((f, i) => ({ image: f.name, rows: [i, i + 1], identity: f.identity }));
  return [header, ...lines].map((line) => `${JSON.stringify(line)}\n`).join('');
}

$('#gallery-export').addEventListener('click', async () => {
  try {
    const model = await loadModel();
    const described = modelOf(model);
    const faces = (await facesOf(described.key)).map(({ identity, name, descriptor }) => ({
      identity,
      name,
      descriptor,
    }));
    if ($('#gallery-export-format').value === 'npy') {
      // Two files, as describe writes them: no zip library is part of the page.
      const npy = `${EXPORT_NAME}.npy`;
      download(
        npy,
        npyEncode(
          faces.map((f) => f.descriptor),
          described.descriptorSize,
        ),
        'application/octet-stream',
      );
      download(`${npy}.index.jsonl`, npyIndex(faces, described), 'application/x-ndjson');
      status(galleryResult, `Exported ${plural(faces.length, 'face')} to ${npy} and ${npy}.index.jsonl.`, 'numbers');
    } else {
      const doc = { format: 'vggface-gallery', version: 1, model: described, faces };
      download(`${EXPORT_NAME}.json`, JSON.stringify(doc), 'application/json');
      status(galleryResult, `Exported ${plural(faces.length, 'face')}.`, 'numbers');
    }
  } catch (err) {
    status(galleryResult, err.message, 'error');
  }
});

/** The model check of every import: descriptors of another network or preprocessing cannot be compared. */
function checkModel(name, theirs, key) {
  if (theirs !== key)
    throw new Error(
      `${name}: its descriptors are of model ${theirs}, but this page has ${key} loaded: they cannot be compared`,
    );
}

/** The faces of a JSON export, checked: [{identity, name, descriptor}]. */
async function readJsonExport(file, key, size) {
  let doc;
  try {
    doc = JSON.parse(await file.text());
  } catch {
    throw new Error(`${file.name}: not JSON`);
  }
  if (doc?.format !== 'vggface-gallery' || doc.version !== 1 || !Array.isArray(doc.faces))
    throw new Error(`${file.name}: not a vggface gallery export (format "vggface-gallery", version 1)`);
  checkModel(file.name, doc.model?.key, key);
  return doc.faces.map((f, i) => {
    if (
      typeof f?.identity !== 'string' ||
      f.identity === '' ||
      !Array.isArray(f.descriptor) ||
      f.descriptor.length !== size ||
      !f.descriptor.every(Number.isFinite)
    ) {
      throw new Error(`${file.name}: face ${i + 1}: expected an identity and a descriptor of ${size} numbers`);
    }
    return { identity: f.identity, name: String(f.name ?? ''), descriptor: f.descriptor };
  });
}

/** The faces of an .npy export and its index (see npyIndex), checked against each other and the model. */
async function readNpyExport(files, key, size) {
  const npy = files.filter((f) => /\.npy$/i.test(f.name));
  const index = files.filter((f) => /\.jsonl$/i.test(f.name));
  if (files.length !== 2 || npy.length !== 1 || index.length !== 1)
    throw new Error(
      `Expected two files, FILE.npy and its FILE.npy.index.jsonl, but received ${files.map((f) => f.name).join(', ')}`,
    );
  const [matrix, list] = [npy[0], index[0]];
  const lines = (await list.text()).split('\n');
  if (lines.at(-1) === '') lines.pop();
  let header;
  try {
    header = JSON.parse(lines[0]);
  } catch {
    throw new Error(`${list.name}: its first line is not JSON`);
  }
  if (header?.vggface !== 'describe-index' || header.format !== 'npy')
    throw new Error(
      `${list.name}: Expected the index of a .npy (a first line {"vggface":"describe-index","format":"npy",...}) ` +
        `but received ${JSON.stringify(lines[0].slice(0, 200))}`,
    );
  // The index vggface describe writes names no model: its rows could be of any network, so they are refused.
  if (typeof header.model?.key !== 'string')
    throw new Error(
      `${list.name}: its header names no model (as the index of vggface describe does not), so its descriptors ` +
        `cannot be checked against this page's ${key}: export the gallery from this page`,
    );
  checkModel(list.name, header.model.key, key);
  const { rows, columns, data } = npyDecode(new Uint8Array(await matrix.arrayBuffer()), matrix.name);
  if (columns !== size)
    throw new Error(
      `${matrix.name}: Expected rows of ${size} values (this model's descriptor size) but received rows of ${columns}`,
    );
  if (header.dimension !== columns)
    throw new Error(`${list.name}: Expected dimension ${columns} (as ${matrix.name}) but received ${header.dimension}`);
  const entries = [];
  let listed = 0;
  for (let i = 1; i < lines.length; i++) {
    let line;
    try {
      line = JSON.parse(lines[i]);
    } catch {
      throw new Error(`${list.name}: line ${i + 1} is not JSON`);
    }
    const [from, to] = Array.isArray(line?.rows) ? line.rows : [];
    if (
      typeof line?.identity !== 'string' ||
      line.identity === '' ||
      typeof line.image !== 'string' ||
      from !== listed ||
      !Number.isInteger(to) ||
      to < from
    )
      throw new Error(
        `${list.name}: line ${i + 1}: Expected {"image": NAME, "rows": [${listed}, END], "identity": NAME} ` +
          `but received ${lines[i].slice(0, 200)}`,
      );
    entries.push({ identity: line.identity, name: line.image, from, to });
    listed = to;
  }
  if (listed !== rows)
    throw new Error(
      `${matrix.name} has ${plural(rows, 'row')} but ${list.name} lists ${plural(listed, 'row')} ` +
        `(in ${plural(entries.length, 'line')} after its header): they are not a pair`,
    );
  const faces = [];
  for (const e of entries) {
    for (let r = e.from; r < e.to; r++) {
      const descriptor = Array.from(data.subarray(r * columns, (r + 1) * columns));
      if (!descriptor.every(Number.isFinite))
        throw new Error(`${matrix.name}: row ${r + 1} (${e.identity}, ${e.name}): a value that is not a finite number`);
      faces.push({ identity: e.identity, name: e.name, descriptor });
    }
  }
  return faces;
}

$('#gallery-import').addEventListener('change', async (e) => {
  const files = [...e.target.files];
  if (files.length === 0) return;
  try {
    const model = await loadModel();
    const key = modelKey(model);
    const size = model.info.descriptorSize;
    const json = files.length === 1 && !/\.(npy|jsonl)$/i.test(files[0].name);
    const faces = json ? await readJsonExport(files[0], key, size) : await readNpyExport(files, key, size);
    const have = new Set((await facesOf(key)).map((f) => `${f.identity}\n${f.descriptor.join(',')}`));
    const fresh = faces
      .filter((f) => !have.has(`${f.identity}\n${f.descriptor.join(',')}`))
      .map((f) => ({ model: key, ...f }));
    await addFaces(fresh);
    galleryResult.replaceChildren(
      el(
        'div',
        { class: 'numbers', 'data-imported': String(fresh.length) },
        `Imported ${plural(fresh.length, 'face')} (${faces.length - fresh.length} already here).`,
      ),
    );
  } catch (err) {
    status(galleryResult, err.message, 'error');
  }
  e.target.value = '';
  await refreshIdentities();
});

// Search: each identity by its closest face, best first.
searchPhoto('Searching, in this browser…', async (file, show) => {
  const model = await loadModel();
  const [r] = await describe(model, [file]);
  show([r.face]);
  const best = new Map();
  for (const f of await facesOf(modelKey(model))) {
    const d = distance(r.descriptor, f.descriptor, 'cosine');
    if (!best.has(f.identity) || d < best.get(f.identity).distance)
      best.set(f.identity, { identity: f.identity, distance: d, source: f.name });
  }
  const matches = [...best.values()].sort((a, b) => a.distance - b.distance).slice(0, 5);
  const t = thresholdFor(model);
  const found = matches[0] && (t === undefined || matches[0].distance <= t) ? matches[0].identity : undefined;
  return [
    searchVerdict(found, t === undefined ? `closest: ${found}` : found),
    el(
      'div',
      { class: 'numbers' },
      t === undefined ? 'cosine distance (no threshold for this model: type one above)' : `cosine threshold ${fmt(t)}`,
    ),
    matchesTable(
      matches.map((m) => matchRow(m, t !== undefined && m.distance <= t, { 'data-distance': String(m.distance) })),
    ),
  ];
});

// The model loads as soon as the page opens, so the first photo does not wait for the download.
void loadModel().then(refreshIdentities, refreshIdentities);
