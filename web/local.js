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
  plural,
  sameVerdict,
  searchPhoto,
  searchVerdict,
  status,
  verifyPhotos,
} from '/common.js';

/** deepface's cosine threshold for VGG-Face (src/verify/thresholds.ts): the only published one, for deepface-mode models. */
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
        `${label}: ${i.precision}, ${i.preprocessing} preprocessing, ${i.descriptorSize}-d; ${model.backend}, ${plural(model.threads, 'thread')}${self.crossOriginIsolated ? '' : ' (not cross-origin isolated)'}`,
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

// Export and import: {"format": "vggface-gallery", "version": 1, "model": {...}, "faces": [{identity, name, descriptor}]}.
$('#gallery-export').addEventListener('click', async () => {
  try {
    const model = await loadModel();
    const key = modelKey(model);
    const faces = (await facesOf(key)).map(({ identity, name, descriptor }) => ({ identity, name, descriptor }));
    const doc = {
      format: 'vggface-gallery',
      version: 1,
      model: {
        key,
        preprocessing: model.info.preprocessing,
        precision: model.info.precision,
        descriptorSize: model.info.descriptorSize,
      },
      faces,
    };
    const url = URL.createObjectURL(new Blob([JSON.stringify(doc)], { type: 'application/json' }));
    const a = el('a', { href: url, download: 'vggface-gallery.json' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    status(galleryResult, `Exported ${plural(faces.length, 'face')}.`, 'numbers');
  } catch (err) {
    status(galleryResult, err.message, 'error');
  }
});

$('#gallery-import').addEventListener('change', async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  try {
    const model = await loadModel();
    const key = modelKey(model);
    let doc;
    try {
      doc = JSON.parse(await file.text());
    } catch {
      throw new Error(`${file.name}: not JSON`);
    }
    if (doc?.format !== 'vggface-gallery' || doc.version !== 1 || !Array.isArray(doc.faces))
      throw new Error(`${file.name}: not a vggface gallery export (format "vggface-gallery", version 1)`);
    if (doc.model?.key !== key)
      throw new Error(
        `${file.name}: its descriptors are of model ${doc.model?.key}, but this page has ${key} loaded: they cannot be compared`,
      );
    const size = model.info.descriptorSize;
    const have = new Set((await facesOf(key)).map((f) => `${f.identity}\n${f.descriptor.join(',')}`));
    const fresh = [];
    for (const [i, f] of doc.faces.entries()) {
      if (
        typeof f?.identity !== 'string' ||
        f.identity === '' ||
        !Array.isArray(f.descriptor) ||
        f.descriptor.length !== size ||
        !f.descriptor.every(Number.isFinite)
      ) {
        throw new Error(`${file.name}: face ${i + 1}: expected an identity and a descriptor of ${size} numbers`);
      }
      if (!have.has(`${f.identity}\n${f.descriptor.join(',')}`))
        fresh.push({ model: key, identity: f.identity, name: String(f.name ?? ''), descriptor: f.descriptor });
    }
    await addFaces(fresh);
    galleryResult.replaceChildren(
      el(
        'div',
        { class: 'numbers', 'data-imported': String(fresh.length) },
        `Imported ${plural(fresh.length, 'face')} (${doc.faces.length - fresh.length} already here).`,
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
