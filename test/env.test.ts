/** Issue 11: every VGGFACE_* variable is read in one place, where an empty value means unset. */
import assert from 'node:assert/strict';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { defaultGalleryPath } from '../src/gallery/gallery.js';
import { ENV_VARIABLES, envValue, readEnv } from '../src/util/env.js';
import { defaultCacheDir } from '../src/util/paths.js';
import { resolveSource, urlSource, WEIGHT_SOURCES } from '../src/weights/official.js';

test('envValue: unset and empty are both undefined; any other value is kept as it is', () => {
  assert.equal(envValue('weightsUrl', {}), undefined);
  assert.equal(envValue('weightsUrl', { VGGFACE_WEIGHTS_URL: '' }), undefined);
  assert.equal(envValue('weightsUrl', { VGGFACE_WEIGHTS_URL: 'http://mirror/x.h5' }), 'http://mirror/x.h5');
  assert.equal(envValue('weights', { VGGFACE_WEIGHTS: ' a b ' }), ' a b ', 'paths may hold spaces');
  assert.deepEqual(
    readEnv({
      VGGFACE_WEIGHTS: '',
      VGGFACE_CACHE: '/c',
      VGGFACE_DEBUG: '1',
      VGGFACE_TOKEN: '',
      VGGFACE_UNKNOWN: 'x',
      HOME: '/h',
    }),
    { cache: '/c', debug: '1' },
  );
  assert.deepEqual(Object.values(ENV_VARIABLES).sort(), [
    'VGGFACE_BENCH_PG',
    'VGGFACE_CACHE',
    'VGGFACE_DEBUG',
    'VGGFACE_DETECTOR_MODEL',
    'VGGFACE_DETECTOR_URL',
    'VGGFACE_GALLERY',
    'VGGFACE_QUEUE_DB',
    'VGGFACE_TOKEN',
    'VGGFACE_WEIGHTS',
    'VGGFACE_WEIGHTS_URL',
  ]);
});

test('the cache and gallery defaults treat an empty variable as unset', () => {
  assert.equal(defaultCacheDir({ VGGFACE_CACHE: '', XDG_CACHE_HOME: '/x' }), join('/x', 'vggface'));
  assert.equal(defaultCacheDir({ VGGFACE_CACHE: '', XDG_CACHE_HOME: '' }), join(homedir(), '.cache', 'vggface'));
  assert.equal(defaultCacheDir({ VGGFACE_CACHE: '/mine' }), '/mine');
  assert.equal(defaultGalleryPath({ VGGFACE_GALLERY: '', XDG_DATA_HOME: '/d' }), join('/d', 'vggface', 'gallery.db'));
});

test(
  '--source: a built-in name, or a URL whose name says ' + 'whether it is a tarball; anything else is a usage error',
  () => {
    assert.equal(resolveSource('deepface'), WEIGHT_SOURCES[1]);
    const tarball = urlSource('https://mirror.example/models/vgg_face_caffe.tar.gz');
    assert.deepEqual(
      [tarball.name, tarball.archive, tarball.download, tarball.file, tarball.fullSize],
      ['url', 'tar.gz', 'vgg_face_caffe.tar.gz', 'VGG_FACE.caffemodel', true],
    );
    const h5 = resolveSource('https://mirror.example/vgg_face_weights.h5?token=1');
    assert.deepEqual(
      [h5.archive, h5.download, h5.file, h5.format],
      [undefined, 'vgg_face_weights.h5.unverified', 'vgg_face_weights.h5', undefined],
    );
    const odd = urlSource('https://mirror.example/');
    assert.deepEqual([odd.download, odd.file], ['download.unverified', 'download']);
    assert.throws(
      () => resolveSource('ftp://x/y'),
      // line-width: regex
      /unknown weight source "ftp:\/\/x\/y": expected one of oxford-caffe, deepface, keras-vggface, oxford-pytorch, idiap-caffe, or an http\(s\) URL/,
    );
  },
);
