// The vggface web page: verify two photos, add photos to the gallery, search a photo. Plain browser JavaScript,
// talking to this server's API with multipart uploads; nothing is loaded from anywhere else.
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

// The token (for routes that change the gallery) is kept for this tab only.
const tokenInput = $('#token');
tokenInput.value = sessionStorage.getItem('vggface-token') ?? '';
tokenInput.addEventListener('input', () => sessionStorage.setItem('vggface-token', tokenInput.value));
$('#token-form').addEventListener('submit', (e) => e.preventDefault());

async function api(method, path, form) {
  const headers = {};
  const token = tokenInput.value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, { method, headers, body: form });
  const body = await res.json().catch(() => ({ error: { code: 'bad_response', message: `HTTP ${res.status}` } }));
  if (!res.ok) throw new Error(body.error?.message ?? `HTTP ${res.status}`);
  return body;
}

/** Photos as the API takes them: multipart, each under `images`. */
function photosForm(files) {
  const form = new FormData();
  for (const f of files) form.append('images', f, f.name);
  return form;
}

// Verify.
verifyPhotos('Comparing…', async (a, b) => {
  const r = await api('POST', '/v1/verify', photosForm([a, b]));
  return {
    faces: r.images.map((used) => (used.face ? [used.face] : [])),
    sizes: r.images,
    verdict: () => [
      sameVerdict(r.verified),
      el(
        'div',
        { class: 'numbers' },
        `${r.metric} distance ${fmt(r.distance)} ${r.verified ? '≤' : '>'} threshold ${fmt(r.threshold)}`,
      ),
    ],
  };
});

// Gallery.
const galleryResult = $('#gallery-result');
const identities = $('#identities');

async function refreshIdentities() {
  try {
    const r = await api('GET', '/v1/gallery');
    identities.replaceChildren();
    if (r.identities.length === 0) identities.append(el('li', { class: 'empty' }, 'None yet.'));
    for (const { identity, faces } of r.identities)
      identities.append(identityItem(identity, faces, () => remove(identity)));
  } catch (err) {
    identities.replaceChildren(el('li', { class: 'error' }, err.message));
  }
}

async function remove(identity) {
  try {
    await api('DELETE', `/v1/gallery/${encodeURIComponent(identity)}`);
    status(galleryResult, `Removed ${identity}.`, 'numbers');
  } catch (err) {
    status(galleryResult, err.message, 'error');
  }
  await refreshIdentities();
}

galleryForm(
  (files) => `Adding ${plural(files.length, 'photo')}…`,
  async (identity, files) => {
    const r = await api('POST', `/v1/gallery/${encodeURIComponent(identity)}/faces`, photosForm(files));
    const added = r.images.filter((i) => i.status === 'added').length;
    const lines = r.images.map((i) =>
      el(
        'li',
        {},
        `${i.name ?? 'photo'}: ${i.status === 'added' ? 'added' : `already in the gallery (as ${i.identity})`}`,
      ),
    );
    return [
      el('div', { class: 'numbers', 'data-added': String(added) }, `${identity}: ${added} added`),
      el('ul', {}, ...lines),
    ];
  },
  refreshIdentities,
);

// Search.
searchPhoto('Searching…', async (file, show) => {
  const [r] = (await api('POST', '/v1/search', photosForm([file]))).results;
  show(r.face ? [r.face] : [], r);
  return [
    searchVerdict(r.identity === 'unknown' ? undefined : r.identity),
    el('div', { class: 'numbers' }, `${r.metric} threshold ${fmt(r.threshold)}`),
    matchesTable(r.matches.map((m) => matchRow(m, m.verified))),
  ];
});

refreshIdentities();
