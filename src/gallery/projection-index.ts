/**
 * The embedded gallery's approximate index: every face's PCA projection in memory, searched in two stages. The
 * components come in order of variance, so the first {@link PREFIX_COMPONENTS} carry most of a distance: all rows
 * are scored on that prefix (a quarter of the bytes of 256 components), the best {@link SHORTLIST_PER_CANDIDATE}
 * per wanted candidate are scored again on every component, and the best of those are the candidates (which the
 * store then re-ranks by the exact descriptor distance).
 *
 * Why: the single pass over a million 256-component rows reads 1 GiB per query and took 206-294 ms here, the pass
 * over their 64-component prefixes 27-131 ms (tmp microbenchmark, 2 cores under load); by brute force, 64 components
 * alone already found 99.3% / 100% of the exact top 10 with 50 / 200 candidates at 100,000 faces (BENCHMARKS.md).
 */
import { exactDistance } from './approximate.js';
import { DescriptorIndex, type IndexedFace } from './descriptor-index.js';

export const PREFIX_COMPONENTS = 64;
export const SHORTLIST_PER_CANDIDATE = 10;

export class ProjectionIndex {
  private readonly full: DescriptorIndex;
  /** Absent when the projection is too short for a prefix to save much. */
  private readonly prefix: DescriptorIndex | undefined;

  constructor(
    readonly components: number,
    threads?: number,
  ) {
    this.full = new DescriptorIndex(components, 'fp32', threads);
    this.prefix =
      components >= 2 * PREFIX_COMPONENTS ? new DescriptorIndex(PREFIX_COMPONENTS, 'fp32', threads) : undefined;
  }

  get size(): number {
    return this.full.size;
  }

  /** Memory held by the projections (and their prefixes), in bytes. */
  get bytes(): number {
    return this.full.bytes + (this.prefix?.bytes ?? 0);
  }

  append(face: IndexedFace, projection: Float32Array): void {
    this.full.append(face, projection);
    this.prefix?.append(face, projection.subarray(0, PREFIX_COMPONENTS));
  }

  /** Drops the faces `keep` rejects (from both stages, which keep the same rows in the same order). */
  retain(keep: (face: IndexedFace) => boolean): number {
    const dropped = this.full.retain(keep);
    this.prefix?.retain(keep);
    return dropped;
  }

  /** The `count` faces nearest `query` (a projection) by Euclidean distance over every component, nearest first. */
  async nearestRows(query: Float32Array, count: number): Promise<IndexedFace[]> {
    const shortlist = count * SHORTLIST_PER_CANDIDATE;
    if (!this.prefix || this.full.size <= shortlist) return this.full.nearestRows(query, count);
    const rows = await this.prefix.nearestRowNumbers(query.subarray(0, PREFIX_COMPONENTS), shortlist);
    const scored = Array.from(rows, (row) => ({
      row,
      d: exactDistance(query, this.full.rowValues(row), 'euclidean'),
    }));
    scored.sort((a, b) => a.d - b.d || a.row - b.row);
    return scored.slice(0, count).map((s) => this.full.faceAt(s.row));
  }

  async close(): Promise<void> {
    await this.full.close();
    await this.prefix?.close();
  }
}
