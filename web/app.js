// The vggface web page: verify two photos, add photos to the gallery, search a photo. Plain browser JavaScript,
// talking to this server's API with multipart uploads; nothing is loaded from anywhere else.
'use strict';

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

const fmt = (x) => (Number.isFinite(x) ? x.toFixed(4) : String(x));

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

/** Shows a photo in a figure, with a box on each face given (in pixels of the photo as displayed). */
function showPhoto(figure, file, faces = [], size) {
  figure.replaceChildren();
  const url = URL.createObjectURL(file);
  const img = el('img', { src: url, alt: file.name });
  img.addEventListener('load', () => URL.revokeObjectURL(url), { once: true });
  figure.append(img);
  if (size) {
    for (const f of faces) {
      const b = f.box;
      const box = el('div', { class: 'face-box', title: `score ${fmt(f.score)}` });
      box.style.left = `${(100 * b.x) / size.width}%`;
      box.style.top = `${(100 * b.y) / size.height}%`;
      box.style.width = `${(100 * b.width) / size.width}%`;
      box.style.height = `${(100 * b.height) / size.height}%`;
      figure.append(box);
    }
  }
  figure.hidden = false;
}

function status(target, text, cls = 'busy') {
  target.replaceChildren(el('span', { class: cls }, text));
}

/** Makes a drop zone: a picked or dropped file calls onFile. */
function dropZone(zone, onFile) {
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

// Verify.
const pair = [undefined, undefined];
const verdict = $('#verdict');
document.querySelectorAll('#verify .drop').forEach((zone) => {
  const slot = Number(zone.dataset.slot);
  dropZone(zone, (file) => {
    pair[slot] = file;
    showPhoto($('.photo', zone), file);
    if (pair[0] && pair[1]) verify();
  });
});

async function verify() {
  const [a, b] = pair;
  status(verdict, 'Comparing…');
  const form = new FormData();
  form.append('images', a, a.name);
  form.append('images', b, b.name);
  try {
    const r = await api('POST', '/v1/verify', form);
    if (pair[0] !== a || pair[1] !== b) return; // a newer pair is being compared
    document.querySelectorAll('#verify .drop').forEach((zone, i) => {
      const used = r.images[i];
      showPhoto($('.photo', zone), pair[i], used.face ? [used.face] : [], used);
    });
    verdict.replaceChildren(
      el('div', { class: `verdict ${r.verified ? 'yes' : 'no'}`, 'data-verified': String(r.verified) }, r.verified ? 'Same person' : 'Different people'),
      el('div', { class: 'numbers' }, `${r.metric} distance ${fmt(r.distance)} ${r.verified ? '≤' : '>'} threshold ${fmt(r.threshold)}`),
    );
  } catch (err) {
    status(verdict, err.message, 'error');
  }
}

// Gallery.
const galleryResult = $('#gallery-result');
const identities = $('#identities');

async function refreshIdentities() {
  try {
    const r = await api('GET', '/v1/gallery');
    identities.replaceChildren();
    if (r.identities.length === 0) identities.append(el('li', { class: 'empty' }, 'None yet.'));
    for (const { identity, faces } of r.identities) {
      identities.append(
        el(
          'li',
          { 'data-identity': identity },
          el('span', { class: 'name' }, identity),
          el('span', { class: 'numbers' }, `${faces} photo${faces === 1 ? '' : 's'}`),
          el('button', { class: 'link', type: 'button', title: `remove ${identity}`, onclick: () => remove(identity) }, 'remove'),
        ),
      );
    }
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

$('#gallery-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const identity = $('#gallery-id').value.trim();
  const files = [...$('#gallery-files').files];
  if (!identity || files.length === 0) return;
  status(galleryResult, `Adding ${files.length} photo${files.length === 1 ? '' : 's'}…`);
  const form = new FormData();
  for (const f of files) form.append('images', f, f.name);
  try {
    const r = await api('POST', `/v1/gallery/${encodeURIComponent(identity)}/faces`, form);
    const added = r.images.filter((i) => i.status === 'added').length;
    const lines = r.images.map((i) => el('li', {}, `${i.name ?? 'photo'}: ${i.status === 'added' ? 'added' : `already in the gallery (as ${i.identity})`}`));
    galleryResult.replaceChildren(el('div', { class: 'numbers', 'data-added': String(added) }, `${identity}: ${added} added`), el('ul', {}, ...lines));
  } catch (err) {
    status(galleryResult, err.message, 'error');
  }
  await refreshIdentities();
});

// Search.
const searchResult = $('#search-result');
const searchZone = $('#search .drop');
dropZone(searchZone, async (file) => {
  const figure = $('.photo', searchZone);
  showPhoto(figure, file);
  status(searchResult, 'Searching…');
  const form = new FormData();
  form.append('images', file, file.name);
  try {
    const [r] = (await api('POST', '/v1/search', form)).results;
    showPhoto(figure, file, r.face ? [r.face] : [], r);
    const rows = r.matches.map((m) =>
      el('tr', { 'data-identity': m.identity }, el('td', {}, m.identity), el('td', {}, fmt(m.distance)), el('td', {}, m.verified ? 'match' : ''), el('td', { class: 'numbers' }, m.source)),
    );
    searchResult.replaceChildren(
      el('div', { class: `verdict ${r.identity === 'unknown' ? 'no' : 'yes'}`, 'data-identity': r.identity }, r.identity === 'unknown' ? 'Nobody in the gallery' : r.identity),
      el('div', { class: 'numbers' }, `${r.metric} threshold ${fmt(r.threshold)}`),
      el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'identity'), el('th', {}, 'distance'), el('th', {}, ''), el('th', {}, 'closest photo'))), el('tbody', {}, ...rows)),
    );
  } catch (err) {
    status(searchResult, err.message, 'error');
  }
});

refreshIdentities();
