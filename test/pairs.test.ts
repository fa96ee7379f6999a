/** Pair lists: LFW pairs.txt and CSV, with bad lines and missing images named by line. */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkPairImages, parseLfwPairs, readPairList } from '../src/verify/pairs.js';
import { FACES_DIR, tempDir } from './helpers.js';

test('LFW pairs.txt: folds from the header, image paths as LFW names them', () => {
  const text = '2\t1\nAlice\t1\t2\nAlice\t1\tBob\t12\nCarol\t3\t4\nCarol\t3\tDan\t1\n';
  const list = parseLfwPairs('pairs.txt', text, '/lfw');
  assert.equal(list.format, 'lfw');
  assert.deepEqual(
    list.pairs.map((p) => [p.a, p.b, p.same, p.fold, p.line]),
    [
      ['/lfw/Alice/Alice_0001.jpg', '/lfw/Alice/Alice_0002.jpg', true, 0, 2],
      ['/lfw/Alice/Alice_0001.jpg', '/lfw/Bob/Bob_0012.jpg', false, 0, 3],
      ['/lfw/Carol/Carol_0003.jpg', '/lfw/Carol/Carol_0004.jpg', true, 1, 4],
      ['/lfw/Carol/Carol_0003.jpg', '/lfw/Dan/Dan_0001.jpg', false, 1, 5],
    ],
  );
});

test('LFW pairs.txt: a bad line and a wrong count are named', () => {
  assert.throws(
    () => parseLfwPairs('p.txt', '1\t1\nAlice\t1\t2\nAlice\tx\n', '/lfw'),
    /p\.txt: line 3: expected "name n1 n2" or "name1 n1 name2 n2", got "Alice\tx"/,
  );
  assert.throws(
    () => parseLfwPairs('p.txt', '1\t2\nAlice\t1\t2\nA\t1\tB\t2\n', '/lfw'),
    /header announces 1 x 2 same \+ 2 different = 4 pairs, the file has 2/,
  );
  assert.throws(() => parseLfwPairs('p.txt', 'hello\n', '/lfw'), /line 1: expected the LFW header/);
});

test('CSV pairs: master.csv from the shared data set', async () => {
  const list = await readPairList(join(FACES_DIR, 'master.csv'), FACES_DIR);
  assert.equal(list.format, 'csv');
  assert.equal(list.pairs.length, 300);
  assert.equal(list.pairs.filter((p) => p.same).length, 38);
  assert.deepEqual(list.pairs[0], {
    a: join(FACES_DIR, 'img20.jpg'),
    b: join(FACES_DIR, 'img21.jpg'),
    same: true,
    line: 2,
  });
  await checkPairImages(list);
});

test('CSV pairs: bad decision, missing column and missing images give the line', async (t) => {
  const dir = tempDir(t);
  const bad = join(dir, 'bad.csv');
  writeFileSync(bad, 'file_x,file_y,Decision\na.jpg,b.jpg,Yes\nc.jpg,d.jpg,Maybe\n');
  await assert.rejects(readPairList(bad, dir), /bad\.csv: line 3: Decision must be Yes or No, got "Maybe"/);
  writeFileSync(bad, 'left,right\na.jpg,b.jpg\n');
  await assert.rejects(readPairList(bad, dir), /line 1: expected a header with columns file_x and file_y/);
  writeFileSync(bad, 'file_x,file_y,Decision\na.jpg,b.jpg,Yes\nc.jpg\n');
  await assert.rejects(readPairList(bad, dir), /line 3: expected 3 columns, got 1/);
  mkdirSync(join(dir, 'img'));
  writeFileSync(join(dir, 'img', 'a.jpg'), 'x');
  writeFileSync(bad, 'file_x,file_y,Decision\na.jpg,a.jpg,Yes\na.jpg,nope.jpg,No\n');
  const list = await readPairList(bad, join(dir, 'img'));
  await assert.rejects(checkPairImages(list), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'E_NOT_FOUND');
    assert.match(err.message, /bad\.csv: 1 pair\(s\) name images that do not exist: line 3: .*nope\.jpg/);
    return true;
  });
});
