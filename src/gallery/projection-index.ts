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

export interface ProjectionIndexOptions {
  threads?: number;
  /** Components of the first stage (default {@link PREFIX_COMPONENTS}). */
  prefixComponents?: number;
  /** Rows rescored on every component, per wanted candidate (default {@link SHORTLIST_PER_CANDIDATE}). */
  shortlistPerCandidate?: number;
}

export class ProjectionIndex {
  private readonly full: DescriptorIndex;
  /** Absent when the projection is too short for a prefix to save much. */
  private readonly prefix: DescriptorIndex | undefined;
  private readonly prefixComponents: number;
  private readonly shortlistPerCandidate: number;

  constructor(
    readonly components: number,
    options: ProjectionIndexOptions = {},
  ) {
    this.prefixComponents = options.prefixComponents ?? PREFIX_COMPONENTS;
    this.shortlistPerCandidate = options.shortlistPerCandidate ?? SHORTLIST_PER_CANDIDATE;
    this.full = new DescriptorIndex(components, 'fp32', options.threads);
    this.prefix =
      components >= 2 * this.prefixComponents
        ? new DescriptorIndex(this.prefixComponents, 'fp32', options.threads)
        : undefined;
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
    this.prefix?.append(face, projection.subarray(0, this.prefixComponents));
  }

  /** Drops the faces `keep` rejects (from both stages, which keep the same rows in the same order). */
  retain(keep: (face: IndexedFace) => boolean): number {
    const dropped = this.full.retain(keep);
    this.prefix?.retain(keep);
    return dropped;
  }

  /** The `count` faces nearest `query` (a projection) by Euclidean distance over every component, nearest first. */
  async nearestRows(query: Float32Array, count: number): Promise<IndexedFace[]> {
    const shortlist = count * this.shortlistPerCandidate;
    if (!this.prefix || this.full.size <= shortlist) return this.full.nearestRows(query, count);
    const rows = await this.prefix.nearestRowNumbers(query.subarray(0, this.prefixComponents), shortlist);
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
