/** What both stores' approximate search shares: its defaults, the candidate check, the fit, the exact re-rank. */
import { randomBytes } from 'node:crypto';
import { usageError } from '../errors.js';
import { distanceFromSums, type Metric } from '../distance/distance.js';
import type { IdentityMatch } from './descriptor-index.js';
import { DEFAULT_COMPONENTS, FIT_SAMPLE, fitProjection, MAX_COMPONENTS, type Projection } from './projection.js';
import type { AnnIndexOptions } from './types.js';

/**
 * Candidates re-ranked when a search names none, by store. Measured on 1,000,000 generated faces (BENCHMARKS.md,
 * "Gallery at scale"): SQLite scores every projection, so 30 candidates already find 99.9% of the exact top 10 (50:
 * 100%), and each candidate is a full descriptor read back from the file, about 1 ms apiece when the 17 GB file is
 * not in the page cache (50 rows: 46-70 ms cold, 1-2 ms warm, here); in PostgreSQL the HNSW walk's own loss sets
 * the recall (0.993 with 50, 0.992 with 30, at 1 ms more for 50), and it keeps 50.
 */
export const DEFAULT_CANDIDATES = { sqlite: 30, postgres: 50 } as const;
export type CandidateStore = keyof typeof DEFAULT_CANDIDATES;
/** How the defaults read in help and descriptions. */
const { sqlite, postgres } = DEFAULT_CANDIDATES;
export const DEFAULT_CANDIDATES_TEXT = `${sqlite} in SQLite, ${postgres} in PostgreSQL`;
export const MAX_CANDIDATES = 1000;

export function checkCandidates(location: string, candidates: number | undefined, store: CandidateStore): number {
  const c = candidates ?? DEFAULT_CANDIDATES[store];
  if (!Number.isInteger(c) || c < 1 || c > MAX_CANDIDATES)
    throw usageError(`${location}: candidates must be an integer from 1 to ${MAX_CANDIDATES}, got ${c}`, 'candidates');
  return c;
}

/** The build's settings, checked against the gallery's dimension. */
export function annSettings(
  location: string,
  dim: number,
  options: AnnIndexOptions = {},
): { components: number; sample: number } {
  const components = options.components ?? Math.min(DEFAULT_COMPONENTS, dim);
  const most = Math.min(dim, MAX_COMPONENTS);
  if (!Number.isInteger(components) || components < 1 || components > most)
    throw usageError(`${location}: components must be an integer from 1 to ${most}, got ${components}`, 'components');
  const sample = options.sample ?? FIT_SAMPLE;
  if (!Number.isInteger(sample) || sample < 2)
    throw usageError(
      `${location}: the projection's sample must be an integer of at least 2 faces, got ${sample}`,
      'sample',
    );
  return { components, sample };
}

/**
 * Fits the projection on `count` sampled descriptors; fewer faces than components keeps as many as the sample allows.
 */
export async function fitGalleryProjection(
  sample: Float32Array,
  count: number,
  dim: number,
  components: number,
  threads?: number,
): Promise<Projection> {
  return fitProjection(sample, count, dim, Math.max(1, Math.min(components, count - 1)), { threads });
}

/**
 * Whether a projection fitted on `fittedOn` faces should be fitted again now that the gallery holds `faces`: when
 * it was fitted on fewer than the full sample and the gallery has since doubled (a projection fitted on the first
 * 50 faces keeps at most 49 directions). Checked when a process first searches approximately.
 */
export function needsRefit(fittedOn: number, faces: number, sample: number): boolean {
  return fittedOn < sample && faces >= 2 * fittedOn;
}

/** A new projection's generation: adds check it, so a face is never projected with a replaced basis. */
export function newGeneration(): string {
  return randomBytes(8).toString('hex');
}

/** The exact distance of a stored descriptor to the query, in float64. */
export function exactDistance(query: Float32Array, descriptor: Float32Array, metric: Metric): number {
  let dot = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < descriptor.length; i++) {
    dot += query[i] * descriptor[i];
    aa += query[i] * query[i];
    bb += descriptor[i] * descriptor[i];
  }
  return distanceFromSums({ dot, aa, bb }, metric);
}

/** The best `k` identities among candidate faces, by their exact distance to the query. */
export function rerank(
  query: Float32Array,
  candidates: readonly { id: number; identity: string; source: string; descriptor: Float32Array }[],
  k: number,
  metric: Metric,
): IdentityMatch[] {
  const best = new Map<string, IdentityMatch>();
  for (const c of candidates) {
    const d = exactDistance(query, c.descriptor, metric);
    const cur = best.get(c.identity);
    if (!cur || d < cur.distance || (d === cur.distance && c.id < cur.face.id))
      best.set(c.identity, {
        identity: c.identity,
        distance: d,
        face: { id: c.id, identity: c.identity, source: c.source },
      });
  }
  return [...best.values()].sort((a, b) => a.distance - b.distance || (a.identity < b.identity ? -1 : 1)).slice(0, k);
}
