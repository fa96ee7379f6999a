/**
 * The embedded gallery's in-memory index: every descriptor in a few large contiguous blocks (float32, or float16
 * at half the memory), their squared norms, and which identity each row belongs to. Exact search: ONNX Runtime
 * scores every row against the query (dot products), the dot products give every metric with the norms, and
 * the rows that can still be among the best (allowing for the product's rounding) are re-scored exactly in
 * float64, so the answer is the exact one for the stored values.
 */
import { distanceFromSums, type Metric } from '../metrics/distance.js';
import { decodeHalf, encodeHalf } from './fp16.js';
import { openScorer, type Precision, type Scorer } from './scorer.js';

/** Rows per block: 16,384 x 4096 floats = 256 MiB (fp32), 128 MiB (fp16). */
export const BLOCK_ROWS = 16384;

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
    if (b === this.blocks.length) this.blocks.push(this.precision === 'fp16' ? new Uint16Array(BLOCK_ROWS * this.dim) : new Float32Array(BLOCK_ROWS * this.dim));
    const off = (row % BLOCK_ROWS) * this.dim;
    (this.blocks[b] as Float32Array | Uint16Array).set(stored as never, off);
    if (row === this.norms.length) {
      const grown = new Float64Array(this.norms.length * 2);
      grown.set(this.norms);
      this.norms = grown;
    }
    const v = this.rowValues(row);
    let s = 0;
    for (let i = 0; i < v.length; i++) s += v[i] * v[i];
    this.norms[row] = s;
    this.faces.push(face);
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
    // Bounds on each row's distance from the bound on its dot product (every metric falls as the dot grows).
    // |computed - q.m| <= err |q_stored| |m| + |q_stored - q| |m|.
    const perNorm = DOT_ERROR[this.precision] * Math.sqrt(qhqh) + Math.sqrt(qdiff);
    const upper = new Float64Array(n);
    const lower = new Float64Array(n);
    for (let r = 0; r < n; r++) {
      const delta = perNorm * Math.sqrt(this.norms[r]);
      lower[r] = distanceFromSums({ dot: dots[r] + delta, aa: qq, bb: this.norms[r] }, metric);
      upper[r] = distanceFromSums({ dot: dots[r] - delta, aa: qq, bb: this.norms[r] }, metric);
    }
    // The k-th best identity's upper bound: no row whose lower bound exceeds it can be among the best k.
    const bestUpper = new Map<string, number>();
    for (let r = 0; r < n; r++) {
      const id = this.faces[r].identity;
      const u = bestUpper.get(id);
      if (u === undefined || upper[r] < u) bestUpper.set(id, upper[r]);
    }
    const cut = [...bestUpper.values()].sort((a, b) => a - b)[Math.min(k, bestUpper.size) - 1];
    const best = new Map<string, { distance: number; row: number }>();
    for (let r = 0; r < n; r++) {
      if (lower[r] > cut) continue;
      const d = distanceFromSums(exactSums(query, this.rowValues(r)), metric);
      const id = this.faces[r].identity;
      const cur = best.get(id);
      if (!cur || d < cur.distance) best.set(id, { distance: d, row: r });
    }
    return [...best.entries()]
      .map(([identity, b]) => ({ identity, distance: b.distance, face: this.faces[b.row] }))
      .sort((a, b) => a.distance - b.distance || (a.identity < b.identity ? -1 : 1))
      .slice(0, k);
  }

  async close(): Promise<void> {
    await this.scorer?.close();
    this.scorer = undefined;
  }
}

/** float64 sums of the exact query against a stored row. */
function exactSums(query: Float32Array, row: Float32Array): { dot: number; aa: number; bb: number } {
  let dot = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < row.length; i++) {
    dot += query[i] * row[i];
    aa += query[i] * query[i];
    bb += row[i] * row[i];
  }
  return { dot, aa, bb };
}
