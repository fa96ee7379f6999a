/** `vggface fidelity` and the comparison behind it, on numbers worked out by hand and from golden.json. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { compareDescriptors } from '../src/verify/fidelity.js';
import { cosineSimilarity, distance } from '../src/distance/distance.js';
import { convertModel } from '../src/onnx/convert-model.js';
import { GOLDEN_DIR, GOLDEN_IMAGES, golden, runCli, tempDir } from './helpers.js';

const close = (actual: number, expected: number, tol: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual}, expected ${expected}`);

test('compareDescriptors on three 2-d descriptors worked out by hand', () => {
  // reference a=(1,0) b=(0,1) c=(1,1); candidate a=(1,0) b=(1,1) c=(0,1)
  const r = compareDescriptors(
    ['a', 'b', 'c'],
    [
      [1, 0],
      [0, 1],
      [1, 1],
    ],
    [
      [1, 0],
      [1, 1],
      [0, 1],
    ],
    { metric: 'cosine', threshold: 0.5 },
  );
  const s = Math.SQRT1_2; // cos 45 degrees
  assert.deepEqual(
    r.images.map((x) => x.image),
    ['a', 'b', 'c'],
  );
  close(r.images[0].cosine, 1, 1e-12, 'a');
  close(r.images[1].cosine, s, 1e-12, 'b');
  close(r.images[2].cosine, s, 1e-12, 'c');
  close(r.cosine.min, s, 1e-12, 'min');
  close(r.cosine.median, s, 1e-12, 'median');
  close(r.cosine.mean, (1 + 2 * s) / 3, 1e-12, 'mean');
  // Reference distances: ab 1, ac 1-s, bc 1-s. Candidate: ab 1-s, ac 1, bc 1-s.
  // At 0.5 the reference calls ac and bc the same person, the candidate ab and bc: ab and ac change.
  assert.equal(r.pairs.total, 3);
  close(r.pairs.maxDistanceChange, s, 1e-12, 'max distance change');
  const d = r.pairs.decisions!;
  assert.equal(d.sameReference, 2);
  assert.equal(d.sameCandidate, 2);
  assert.equal(d.changed, 2);
  assert.deepEqual(
    d.changes.map((c) => `${c.a}${c.b}`),
    ['ab', 'ac'],
  );
  close(d.changes[0].referenceDistance, 1, 1e-12, 'ab reference');
  close(d.changes[0].candidateDistance, 1 - s, 1e-12, 'ab candidate');
});

test(
  'euclidean_l2 distance is that of the unit vectors; a ' + 'zero vector has cosine 0; no threshold, no decisions',
  () => {
    close(distance([2, 0], [0, 5], 'euclidean_l2'), Math.SQRT2, 1e-12, 'orthogonal');
    close(distance([1, 0], [1, 1], 'euclidean_l2'), Math.sqrt(2 - Math.SQRT2), 1e-12, '45 degrees');
    close(distance([1, 0], [1, 0], 'euclidean_l2'), 0, 1e-12, 'same');
    assert.equal(cosineSimilarity([0, 0], [1, 0]), 0);
    const r = compareDescriptors(
      ['a', 'b'],
      [
        [1, 0],
        [0, 1],
      ],
      [
        [1, 0],
        [0, 1],
      ],
      { metric: 'euclidean_l2' },
    );
    assert.equal(r.pairs.decisions, undefined);
    assert.equal(r.pairs.maxDistanceChange, 0);
    assert.throws(() => compareDescriptors(['a'], [[1]], [], { metric: 'cosine' }), /descriptors/);
  },
);

test('vggface fidelity: caffe vs deepface preprocessing of the tiny model matches golden.json', async (t) => {
  // Both models are the tiny golden network; the candidate feeds it 0-1 pixels instead of 0-255 minus the mean, so
  // its descriptors are golden.json's deepface_fc7_l2 while the reference's are fc7_l2: every number below is
  // computed from golden.json here and must come out of the command.
  const dir = tempDir(t);
  const caffeModel = join(dir, 'caffe.onnx');
  const deepfaceModel = join(dir, 'deepface.onnx');
  const weights = join(GOLDEN_DIR, 'VGG_FACE.caffemodel');
  await convertModel(weights, caffeModel, { preprocessing: 'caffe' });
  await convertModel(weights, deepfaceModel, { preprocessing: 'deepface' });
  const names = [...GOLDEN_IMAGES];
  const expected = compareDescriptors(
    names,
    names.map((n) => golden.images[n].fc7_l2),
    names.map((n) => golden.images[n].deepface_fc7_l2),
    { metric: 'cosine', threshold: 0.1 },
  );
  // The case is not trivial: cosines 0.78-0.89, and two of six decisions change at 0.1.
  assert.equal(expected.pairs.decisions!.changed, 2);

  const paths = names.map((n) => join(GOLDEN_DIR, n));
  const r = await runCli([
    'fidelity',
    '--reference',
    caffeModel,
    '--candidate',
    deepfaceModel,
    '--threshold',
    '0.1',
    '--json',
    ...paths,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const got = JSON.parse(r.stdout);
  assert.equal(got.reference.precision, 'fp32');
  assert.equal(got.images.length, 4);
  got.images.forEach((x: { image: string; cosine: number }, i: number) => {
    assert.equal(x.image, paths[i]);
    close(x.cosine, expected.images[i].cosine, 1e-4, names[i]);
  });
  close(got.cosine.min, expected.cosine.min, 1e-4, 'min');
  close(got.cosine.median, expected.cosine.median, 1e-4, 'median');
  assert.equal(got.pairs.total, 6);
  close(got.pairs.maxDistanceChange, expected.pairs.maxDistanceChange, 1e-4, 'max distance change');
  const d = got.pairs.decisions;
  assert.equal(d.sameReference, expected.pairs.decisions!.sameReference);
  assert.equal(d.sameCandidate, expected.pairs.decisions!.sameCandidate);
  assert.equal(d.changed, 2);
  assert.deepEqual(
    d.changes.map((c: { a: string; b: string }) => [c.a, c.b]),
    expected.pairs.decisions!.changes.map((c) => [join(GOLDEN_DIR, c.a), join(GOLDEN_DIR, c.b)]),
  );

  // Text output, with an unreadable input reported and left out (exit 1).
  const bad = join(GOLDEN_DIR, 'README.md');
  const text = await runCli([
    'fidelity',
    '--reference',
    caffeModel,
    '--candidate',
    deepfaceModel,
    '--threshold',
    '0.1',
    ...paths,
    bad,
  ]);
  assert.equal(text.code, 1);
  assert.match(text.stderr, /README\.md: not a decodable image/);
  assert.match(text.stdout, /images: +4/);
  assert.match(text.stdout, new RegExp(`min ${expected.cosine.min.toFixed(4)}\\d* \\(.*img5\\.png\\)`));
  assert.match(text.stdout, /decisions at cosine distance <= 0\.1: 2 of 6 pairs change/);

  // Without a threshold there are no decisions.
  const noThreshold = await runCli([
    'fidelity',
    '--reference',
    caffeModel,
    '--candidate',
    deepfaceModel,
    '--json',
    ...paths,
  ]);
  assert.equal(noThreshold.code, 0, noThreshold.stderr);
  assert.equal(JSON.parse(noThreshold.stdout).pairs.decisions, undefined);
});

test('vggface fidelity: bad flags', async () => {
  const img = join(GOLDEN_DIR, 'img1.png');
  const model = join(GOLDEN_DIR, 'VGG_FACE.caffemodel');
  const noCandidate = await runCli(['fidelity', '--reference', model, img]);
  assert.equal(noCandidate.code, 2);
  assert.match(noCandidate.stderr, /--candidate/);
  const badThreshold = await runCli([
    'fidelity',
    '--reference',
    model,
    '--candidate',
    model,
    '--threshold',
    'high',
    img,
  ]);
  assert.equal(badThreshold.code, 2);
  assert.match(badThreshold.stderr, /Expected a number between 0 and 2 for --threshold but received "high"/);
  const badMetric = await runCli([
    'fidelity',
    '--reference',
    model,
    '--candidate',
    model,
    '--metric',
    'manhattan',
    img,
  ]);
  assert.equal(badMetric.code, 2);
  assert.match(badMetric.stderr, /Expected one of cosine, euclidean, euclidean_l2, angular for --metric/);
});
