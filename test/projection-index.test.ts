/**
 * The embedded gallery's two-stage projection index: rows scored on the first 64 components, a shortlist scored on
 * all of them. Where the tail carries nothing it must give exactly the single-pass answer; with a spectrum like a
 * PCA's (variance falling with the component), nearly always.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DescriptorIndex } from '../src/gallery/descriptor-index.js';
import { PREFIX_COMPONENTS, ProjectionIndex, SHORTLIST_PER_CANDIDATE } from '../src/gallery/projection-index.js';
import { gaussian, mulberry32 } from '../src/util/random.js';

const K = 256;

function fill(n: number, scale: (component: number) => number, seed: number) {
  const u = mulberry32(seed);
  const g = () => gaussian(u);
  const two = new ProjectionIndex(K);
  const one = new DescriptorIndex(K, 'fp32');
  for (let i = 0; i < n; i++) {
    const v = Float32Array.from({ length: K }, (_, c) => g() * scale(c));
    const face = { id: i, identity: `p${i % 97}`, source: '' };
    two.append(face, v);
    one.append(face, v);
  }
  const query = () => Float32Array.from({ length: K }, (_, c) => g() * scale(c));
  return { two, one, query };
}

test('ProjectionIndex: the prefix stage changes nothing when the tail components are zero', async () => {
  const { two, one, query } = fill(6000, (c) => (c < PREFIX_COMPONENTS ? 1 : 0), 1);
  assert.equal(two.size, 6000);
  // Blocks grow by doubling: room for 8,192 rows of each stage.
  assert.equal(two.bytes, 8192 * (K + PREFIX_COMPONENTS) * 4);
  for (let i = 0; i < 5; i++) {
    const q = query();
    const ids = (await two.nearestRows(q, 20)).map((f) => f.id);
    assert.deepEqual(
      ids,
      (await one.nearestRows(q, 20)).map((f) => f.id),
    );
  }
  await two.close();
  await one.close();
});

test(
  'ProjectionIndex: with a falling spectrum the two ' + 'stages find the single pass answer (recall >= 0.99)',
  async () => {
    // Standard deviation halving every 32 components (variance every 16): the first 64 hold 94% of the variance.
    const { two, one, query } = fill(20_000, (c) => 2 ** (-c / 32), 2);
    let found = 0;
    const queries = 20;
    const count = 50;
    for (let i = 0; i < queries; i++) {
      const q = query();
      const exact = new Set((await one.nearestRows(q, count)).map((f) => f.id));
      found += (await two.nearestRows(q, count)).filter((f) => exact.has(f.id)).length;
    }
    assert.ok(found / (queries * count) >= 0.99, `recall ${found / (queries * count)}`);
    assert.equal(SHORTLIST_PER_CANDIDATE, 10);
    await two.close();
    await one.close();
  },
);

test('ProjectionIndex: retain drops the same rows from both stages', async () => {
  const { two, one, query } = fill(3000, (c) => 2 ** (-c / 32), 3);
  assert.equal(
    two.retain((f) => f.identity !== 'p5'),
    one.retain((f) => f.identity !== 'p5'),
  );
  const q = query();
  const ids = (await two.nearestRows(q, 10)).map((f) => f.id);
  assert.ok(ids.every((id) => id % 97 !== 5));
  assert.deepEqual(
    ids,
    (await one.nearestRows(q, 10)).map((f) => f.id),
  );
  await two.close();
  await one.close();
});
