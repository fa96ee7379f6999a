/**
 * Issue 4: gallery search latency on synthetic 4096-d descriptors (5 faces per identity): the embedded exact
 * search (fp32, fp16) and pgvector exact and binary-quantized HNSW with recall@10 against exact.
 * Sizes that cannot fit are reported with the reason instead of being measured.
 */
import { freemem } from 'node:os';
import { mkdirSync } from 'node:fs';
import { mb, runTask, WORK_DIR, type Section } from '../harness.js';

const DIM = 4096;
const GiB = 1024 ** 3;

interface Embedded {
  buildMs: number;
  bytes: number;
  medianMs: number;
  p90Ms: number;
  minMs: number;
  correct: number;
  queries: number;
}
interface Pgvector {
  loadMs: number;
  exactMedianMs: number;
  approx: { candidates: number; medianMs: number; recallAt10: number }[];
}

export const searchSection: Section = {
  name: 'search',
  title: 'Gallery search: embedded exact (fp32, fp16) and pgvector (exact, binary-quantized HNSW)',
  async run(ctx) {
    mkdirSync(WORK_DIR, { recursive: true });
    const sizes = ctx.quick ? [10_000] : [10_000, 100_000, 1_000_000];
    const queries = ctx.quick ? 5 : 30;
    const lines = [
      'Synthetic L2-normalised 4096-d descriptors, 5 faces per identity (a random direction per identity plus noise); k = 10, cosine.',
      'Embedded: the in-memory index the SQLite gallery searches (ONNX Runtime dot products over 16,384-row blocks, then exact',
      're-ranking of the rows that can still win); latency per query, the index already in memory.',
      '',
      '| store | faces | memory | median ms | p90 ms | top-1 identity correct | peak RSS |',
      '| --- | --- | --- | --- | --- | --- | --- |',
    ];
    for (const size of sizes) {
      for (const precision of ['fp32', 'fp16'] as const) {
        const need = size * DIM * (precision === 'fp16' ? 2 : 4);
        // Blocks are allocated whole (16,384 rows), and the rest of the machine needs room: 4 GiB spare.
        const blocks = Math.ceil(size / 16_384) * 16_384 * DIM * (precision === 'fp16' ? 2 : 4);
        if (blocks + 4 * GiB > freemem()) {
          lines.push(`| embedded ${precision} | ${size.toLocaleString('en-US')} | ${(need / GiB).toFixed(1)} GiB | not run: needs ${(blocks / GiB).toFixed(1)} GiB + 4 GiB spare, ${(freemem() / GiB).toFixed(1)} GiB free now | | | |`);
          continue;
        }
        ctx.log(`embedded ${precision} ${size}`);
        const r = await runTask<Embedded>('search-embedded', { size, precision, dim: DIM, queries });
        const e = r.result;
        lines.push(`| embedded ${precision} | ${size.toLocaleString('en-US')} | ${mb(e.bytes)} | ${e.medianMs.toFixed(1)} | ${e.p90Ms.toFixed(1)} | ${e.correct}/${e.queries} | ${mb(r.maxRss)} |`);
      }
    }
    lines.push(
      '',
      'pgvector over the wire (pg client -> pglite-socket -> PGlite 0.5 with pgvector 0.8, PostgreSQL 18 in WebAssembly, single-threaded,',
      'data directory on disk): exact = sequential scan ordered by cosine distance; approximate = HNSW on',
      'binary_quantize(embedding)::bit(4096) (Hamming), the candidates re-ranked by exact distance. recall@10 = share of the exact top 10 found.',
      '',
      '| store | faces | load (s) | exact median ms | approximate: candidates, median ms, recall@10 | peak RSS |',
      '| --- | --- | --- | --- | --- | --- |',
    );
    // PGlite runs PostgreSQL in 32-bit WebAssembly: a few GB of data at most, loaded by one thread.
    const pgSizes = ctx.quick ? [2_000] : [10_000, 100_000];
    for (const size of pgSizes) {
      for (const precision of ['fp32', 'fp16'] as const) {
        ctx.log(`pgvector ${precision} ${size}`);
        const r = await runTask<Pgvector>('search-pgvector', { size, precision, dim: DIM, queries, candidates: [40, 200, 1000] });
        const p = r.result;
        const approx = p.approx.map((a) => `${a.candidates}: ${a.medianMs.toFixed(1)} ms, ${(a.recallAt10 * 100).toFixed(0)}%`).join('; ');
        lines.push(`| pgvector ${precision === 'fp16' ? 'halfvec' : 'vector'} | ${size.toLocaleString('en-US')} | ${(p.loadMs / 1000).toFixed(1)} | ${p.exactMedianMs.toFixed(1)} | ${approx} | ${mb(r.maxRss)} |`);
      }
    }
    if (!ctx.quick) {
      lines.push(
        `| pgvector | 1,000,000 | not run: 1M x 4096 is 8-16 GB of vectors, beyond PGlite's 32-bit WebAssembly PostgreSQL; measure on a real PostgreSQL server | | | |`,
      );
    }
    return lines.join('\n');
  },
};
