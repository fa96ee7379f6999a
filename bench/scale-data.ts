/**
 * The face sets the "Gallery at scale" benchmark searches, behind one interface: chunks of gallery faces (never all
 * held at once: a million 4096-d faces are 16 GiB), and queries (new faces of gallery identities).
 * - `generated`: the generator fitted to fc7 of augmented crops of ../shared/data/faces (bench/face-generator.ts);
 * - `augmented`: that set itself (its own size), one crop in 40 held out as queries;
 * - `isotropic`: the earlier synthetic set (a random direction per identity plus isotropic noise, bench/synthetic.ts).
 */
import { FACES_PER_IDENTITY, syntheticFace, syntheticQuery } from './synthetic.js';
import { ensureFaceGenerator, openFaceGenerator } from './face-generator.js';
import { ensureAugmentedFaceSet, loadFaceSet } from './face-sets.js';

export type ScaleSetName = 'generated' | 'augmented' | 'isotropic';

export interface ScaleSet {
  readonly name: ScaleSetName;
  readonly dim: number;
  /** Gallery faces (for `augmented`: the set's size less the held-out queries, whatever was asked). */
  readonly size: number;
  /** What the set is, for BENCHMARKS.md. */
  readonly description: string;
  /** Faces start .. start + count - 1: descriptors and identity numbers. */
  chunk(start: number, count: number): Promise<{ data: Float32Array; identity: Int32Array }>;
  /** `n` queries spread over the identities, each a face not in the gallery, with its identity. */
  queries(n: number): Promise<{ data: Float32Array; identity: number }[]>;
  close(): Promise<void>;
}

export async function openScaleSet(name: ScaleSetName, size: number): Promise<ScaleSet> {
  if (name === 'isotropic') {
    const dim = 4096;
    return {
      name,
      dim,
      size,
      description: 'isotropic synthetic: a random direction per identity plus isotropic noise, 5 faces per identity',
      async chunk(start, count) {
        const data = new Float32Array(count * dim);
        const identity = new Int32Array(count);
        for (let i = 0; i < count; i++) {
          syntheticFace(start + i, data.subarray(i * dim, (i + 1) * dim));
          identity[i] = Math.floor((start + i) / FACES_PER_IDENTITY);
        }
        return { data, identity };
      },
      async queries(n) {
        const ids = Math.ceil(size / FACES_PER_IDENTITY);
        return Array.from({ length: n }, (_, q) => {
          const identity = Math.floor(((q + 0.5) / n) * ids);
          return { data: syntheticQuery(identity, dim), identity };
        });
      },
      close: async () => {},
    };
  }
  if (name === 'generated') {
    const { params } = await ensureFaceGenerator({ log: (m: string) => process.stderr.write(`${m}\n`) });
    const g = await openFaceGenerator(params);
    const fpi = params.facesPerIdentity;
    return {
      name,
      dim: params.dim,
      size,
      description:
        'generated: fitted to fc7 of augmented face crops ' +
        `(${params.source ?? 'bench/face-generator.ts'}), ${fpi} faces per identity`,
      chunk: (start, count) => g.faces(start, count, 1),
      async queries(n) {
        const ids = Math.floor(size / fpi);
        const out = [];
        for (let q = 0; q < n; q++) {
          const identity = Math.floor(((q + 0.5) / n) * ids);
          out.push({ data: await g.query(identity, 1000 + q, 1), identity });
        }
        return out;
      },
      close: () => g.close(),
    };
  }
  const files = await ensureAugmentedFaceSet({ log: (m: string) => process.stderr.write(`${m}\n`) });
  const set = loadFaceSet(files);
  const dim = set.dim;
  const held = (r: number) => r % 40 === 17;
  const rows = [...Array(set.rows).keys()].filter((r) => !held(r));
  const queryRows = [...Array(set.rows).keys()].filter(held);
  return {
    name,
    dim,
    size: rows.length,
    description:
      `augmented crops: fc7 of ${set.rows} augmented crops of the photos in ../shared/data/faces ` +
      `(${files.meta.model.description}), identity = person; one crop in 40 held out as queries`,
    async chunk(start, count) {
      const n = Math.max(0, Math.min(count, rows.length - start));
      const data = new Float32Array(n * dim);
      const identity = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const r = rows[start + i];
        data.set(set.data.subarray(r * dim, (r + 1) * dim), i * dim);
        identity[i] = set.identity[r];
      }
      return { data, identity };
    },
    async queries(n) {
      const pick = queryRows.filter((_, i) => i % Math.max(1, Math.floor(queryRows.length / n)) === 0).slice(0, n);
      return pick.map((r) => ({ data: set.data.slice(r * dim, (r + 1) * dim), identity: set.identity[r] }));
    },
    close: async () => {},
  };
}
