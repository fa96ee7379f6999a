/**
 * The package entry point re-exports the public API (resolved through package.json "exports", as a user imports it).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as api from 'vggface';
import * as internal from 'vggface/internal';
import { VggFace } from '../src/vggface.js';
import { Gallery } from '../src/gallery/gallery.js';
import { VggFaceError } from '../src/errors.js';

test('the package root exports the library, verification and gallery API', () => {
  assert.equal(api.VggFace, VggFace);
  assert.equal(api.Gallery, Gallery);
  assert.equal(api.VggFaceError, VggFaceError);
  assert.deepEqual(api.METRICS, ['cosine', 'euclidean', 'euclidean_l2', 'angular']);
  assert.deepEqual(api.DEEPFACE_THRESHOLDS, { cosine: 0.68, euclidean: 1.17, euclidean_l2: 1.17, angular: 0.39 });
  assert.equal(api.distance([1, 0], [0, 1], 'angular'), 0.5);
  for (const name of ['evaluatePairs', 'resolveThreshold', 'readPairList', 'writeRocPlot']) {
    assert.equal(typeof (api as Record<string, unknown>)[name], 'function', name);
  }
  // The stores and the index are internals, behind vggface/internal (test/public-api.test.ts lists the root).
  for (const name of ['openGalleryStore', 'SqliteStore', 'PostgresStore', 'DescriptorIndex']) {
    assert.equal(typeof (internal as Record<string, unknown>)[name], 'function', name);
  }
});
