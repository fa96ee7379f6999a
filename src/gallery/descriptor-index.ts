/**
 * The embedded gallery's in-memory index: every descriptor in a few large contiguous blocks (float32, or float16
 * at half the memory), their squared norms, and which identity each row belongs to. Exact search: ONNX Runtime
 * scores every row against the query (dot products), the dot products give every metric with the norms, and
 * the rows that can still be among the best (allowing for the product's rounding) are re-scored exactly in
 * float64, so the answer is the exact one for the stored values.
 */
import type { Metric } from '../distance/distance.js';
import { exactDistance } from './approximate.js';
import { decodeHalf, encodeHalf } from '../util/float16.js';
import { openScorer, type Precision, type Scorer } from './scorer.js';

/**
 * Rows per block: 65,536 x 4096 floats = 1 GiB (fp32), 512 MiB (fp16); a block grows by doubling up to that.
 * Fewer, larger products are faster (measured at 100,000 rows: one product ~65 ms, 16,384-row blocks ~95 ms).
 */
export const BLOCK_ROWS = 65536;
const FIRST_BLOCK_ROWS = 1024;

/**
 * Bound on |computed - exact| dot product, relative to |query| |row|: float32 accumulation over 4096 terms
 * (n u = 2.4e-4 worst case), and for float16 the float16 rounding of the result (2^-11) on top.
 */
const DOT_ERROR: Record<Precision, number> = { fp32: 2.5e-4, fp16: 2.5e-4 + 2 ** -10 };

export interface IndexedFace {
  readonly id: number;
  readonly identity: string;
  readonly source: string;
}

export interface IdentityMatch {
  readonly identity: string;
  /** The smallest distance over this identity's faces. */
  readonly distance: number;
  /** The face that gave it. */
  readonly face: IndexedFace;
}

export class DescriptorIndex {
  private readonly blocks: (Float32Array | Uint16Array)[] = [];
  private norms = new Float64Array(1024);
  private faces: IndexedFace[] = [];
  /** Per row, the number of its identity in identityNames (so a search never hashes strings per row). */
  private identityOf = new Int32Array(1024);
  private readonly identityNames: string[] = [];
  private readonly identityNumbers = new Map<string, number>();
  private scorer: Scorer | undefined;

  constructor(
    readonly dim: number,
    readonly precision: Precision,
    private readonly threads?: number,
  ) {}

  get size(): number {
    return this.faces.length;
  }

  /** Memory held by the descriptors, in bytes. */
  get bytes(): number {
    return this.blocks.reduce((s, b) => s + b.byteLength, 0);
  }

  /** Appends a face; `stored` is the descriptor as stored (float16 bits when fp16). */
  append(face: IndexedFace, stored: Float32Array | Uint16Array): void {
    if (stored.length !== this.dim) throw new Error(`internal: descriptor of ${stored.length}, index of ${this.dim}`);
    const row = this.faces.length;
    const b = Math.floor(row / BLOCK_ROWS);
    const within = row % BLOCK_ROWS;
    if (b === this.blocks.length) this.blocks.push(this.newBlock(FIRST_BLOCK_ROWS));
    if ((within + 1) * this.dim > this.blocks[b].length) {
      const grown = this.newBlock(Math.min(BLOCK_ROWS, (this.blocks[b].length / this.dim) * 2));
      grown.set(this.blocks[b] as never);
      this.blocks[b] = grown;
    }
    (this.blocks[b] as Float32Array | Uint16Array).set(stored as never, within * this.dim);
    if (row === this.norms.length) {
      const grown = new Float64Array(this.norms.length * 2);
      grown.set(this.norms);
      this.norms = grown;
      const ids = new Int32Array(this.identityOf.length * 2);
      ids.set(this.identityOf);
      this.identityOf = ids;
    }
    let idn = this.identityNumbers.get(face.identity);
    if (idn === undefined) {
      idn = this.identityNames.length;
      this.identityNames.push(face.identity);
      this.identityNumbers.set(face.identity, idn);
    }
    this.identityOf[row] = idn;
    const v = this.rowValues(row);
    let s = 0;
    for (let i = 0; i < v.length; i++) s += v[i] * v[i];
    this.norms[row] = s;
    this.faces.push(face);
  }

  private newBlock(rows: number): Float32Array | Uint16Array {
    return this.precision === 'fp16' ? new Uint16Array(rows * this.dim) : new Float32Array(rows * this.dim);
  }

  /** The stored form of a descriptor in this index's precision. */
  encode(descriptor: Float32Array): Float32Array | Uint16Array {
    return this.precision === 'fp16' ? encodeHalf(descriptor) : descriptor;
  }

  /** Drops the faces `keep` rejects, compacting the blocks in place. */
  retain(keep: (face: IndexedFace) => boolean): number {
    let w = 0;
    const n = this.faces.length;
    for (let r = 0; r < n; r++) {
      if (!keep(this.faces[r])) continue;
      if (w !== r) {
        const src = this.blocks[Math.floor(r / BLOCK_ROWS)];
        const dst = this.blocks[Math.floor(w / BLOCK_ROWS)];
        const so = (r % BLOCK_ROWS) * this.dim;
        dst.set(src.subarray(so, so + this.dim) as never, (w % BLOCK_ROWS) * this.dim);
        this.norms[w] = this.norms[r];
        this.identityOf[w] = this.identityOf[r];
        this.faces[w] = this.faces[r];
      }
      w++;
    }
    this.faces.length = w;
    this.blocks.length = Math.ceil(w / BLOCK_ROWS);
    return n - w;
  }

  /** A row's values as float32 (decoded from float16 when needed). */
  rowValues(row: number): Float32Array {
    const block = this.blocks[Math.floor(row / BLOCK_ROWS)];
    const off = (row % BLOCK_ROWS) * this.dim;
    const raw = block.subarray(off, off + this.dim);
    return raw instanceof Uint16Array ? decodeHalf(raw) : (raw as Float32Array);
  }

  /** The best `k` identities for `query`, by the smallest distance over each identity's faces. */
  async search(query: Float32Array, k: number, metric: Metric): Promise<IdentityMatch[]> {
    const n = this.faces.length;
    if (n === 0) return [];
    this.scorer ??= await openScorer(this.dim, this.precision, this.threads);
    // Score against the query as stored (float16 query for a float16 index), re-score against the exact query.
    const q = this.encode(query);
    const qValues = q instanceof Uint16Array ? decodeHalf(q) : q;
    let qq = 0;
    let qhqh = 0;
    let qdiff = 0;
    for (let i = 0; i < query.length; i++) {
      qq += query[i] * query[i];
      qhqh += qValues[i] * qValues[i];
      qdiff += (qValues[i] - query[i]) ** 2;
    }
    const dots = new Float32Array(n);
    for (let b = 0; b < this.blocks.length; b++) {
      const rows = Math.min(BLOCK_ROWS, n - b * BLOCK_ROWS);
      const block = this.blocks[b].subarray(0, rows * this.dim);
      dots.set(await this.scorer.scores(block, rows, q), b * BLOCK_ROWS);
    }
    // |computed dot - q.m| <= perNorm |m|. Rank rows by a key that every metric's distance grows with:
    // -cos for the angle-based metrics, |m|^2 - 2 q.m for euclidean; bound each key from the dot's bound.
    const perNorm = DOT_ERROR[this.precision] * Math.sqrt(qhqh) + Math.sqrt(qdiff);
    const qn = Math.sqrt(qq);
    const euclid = metric === 'euclidean';
    const key = new Float64Array(n);
    const err = new Float64Array(n);
    for (let r = 0; r < n; r++) {
      const m2 = this.norms[r];
      const mn = Math.sqrt(m2);
      if (euclid) {
        key[r] = m2 - 2 * dots[r];
        err[r] = 2 * perNorm * mn;
      } else {
        key[r] = mn > 0 && qn > 0 ? -dots[r] / (qn * mn) : 0;
        err[r] = qn > 0 ? perNorm / qn : 0;
      }
    }
    // The k-th best identity's upper bound: no row whose lower bound exceeds it can be among the best k.
    const bestUpper = new Float64Array(this.identityNames.length).fill(Infinity);
    for (let r = 0; r < n; r++) {
      const id = this.identityOf[r];
      const u = key[r] + err[r];
      if (u < bestUpper[id]) bestUpper[id] = u;
    }
    const uppers = bestUpper.filter((u) => u !== Infinity).sort();
    const cut = uppers[Math.min(k, uppers.length) - 1];
    const best = new Map<string, { distance: number; row: number }>();
    for (let r = 0; r < n; r++) {
      if (key[r] - err[r] > cut) continue;
      const d = exactDistance(query, this.rowValues(r), metric);
      const id = this.faces[r].identity;
      const cur = best.get(id);
      if (!cur || d < cur.distance) best.set(id, { distance: d, row: r });
    }
    return [...best.entries()]
      .map(([identity, b]) => ({ identity, distance: b.distance, face: this.faces[b.row] }))
      .sort((a, b) => a.distance - b.distance || (a.identity < b.identity ? -1 : 1))
      .slice(0, k);
  }

  /**
   * The `count` rows nearest to `query` by Euclidean distance (the approximate search's candidates, in projection
   * space), nearest first. A bounded max-heap over the keys |m|^2 - 2 q.m: one pass, no sort of every row.
   */
  async nearestRows(query: Float32Array, count: number): Promise<IndexedFace[]> {
    return [...(await this.nearestRowNumbers(query, count))].map((r) => this.faces[r]);
  }

  /** The face stored in `row`. */
  faceAt(row: number): IndexedFace {
    return this.faces[row];
  }

  /** As nearestRows, the row numbers. */
  async nearestRowNumbers(query: Float32Array, count: number): Promise<Int32Array> {
    const n = this.faces.length;
    if (n === 0 || count < 1) return new Int32Array(0);
    this.scorer ??= await openScorer(this.dim, this.precision, this.threads);
    const q = this.encode(query);
    const want = Math.min(count, n);
    const heapKey = new Float64Array(want);
    const heapRow = new Int32Array(want);
    let size = 0;
    const siftDown = (i: number) => {
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < size && heapKey[l] > heapKey[m]) m = l;
        if (r < size && heapKey[r] > heapKey[m]) m = r;
        if (m === i) return;
        [heapKey[i], heapKey[m]] = [heapKey[m], heapKey[i]];
        [heapRow[i], heapRow[m]] = [heapRow[m], heapRow[i]];
        i = m;
      }
    };
    for (let b = 0; b < this.blocks.length; b++) {
      const rows = Math.min(BLOCK_ROWS, n - b * BLOCK_ROWS);
      const dots = await this.scorer.scores(this.blocks[b].subarray(0, rows * this.dim), rows, q);
      const base = b * BLOCK_ROWS;
      for (let r = 0; r < rows; r++) {
        const key = this.norms[base + r] - 2 * dots[r];
        if (size < want) {
          // Sift up.
          let i = size++;
          heapKey[i] = key;
          heapRow[i] = base + r;
          while (i > 0) {
            const p = (i - 1) >> 1;
            if (heapKey[p] >= heapKey[i]) break;
            [heapKey[i], heapKey[p]] = [heapKey[p], heapKey[i]];
            [heapRow[i], heapRow[p]] = [heapRow[p], heapRow[i]];
            i = p;
          }
        } else if (key < heapKey[0]) {
          heapKey[0] = key;
          heapRow[0] = base + r;
          siftDown(0);
        }
      }
    }
    const order = [...Array(size).keys()].sort((a, b) => heapKey[a] - heapKey[b]);
    return Int32Array.from(order, (i) => heapRow[i]);
  }

  async close(): Promise<void> {
    await this.scorer?.close();
    this.scorer = undefined;
  }
}
