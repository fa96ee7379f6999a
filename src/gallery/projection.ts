/**
 * The approximate search's projection: a PCA of the gallery's own descriptors, fitted on a sample, that maps a
 * 4096-d descriptor to a few hundred dimensions. pgvector cannot index 4096-d vectors (HNSW stops at 2,000 for
 * vector), and an in-memory index of a million 4096-d faces needs 16 GB; the projection is small enough for both,
 * and keeps most of the geometry: fc7 descriptors vary along few directions (see BENCHMARKS.md, "Gallery at
 * scale", for the recall measured per number of components). Candidates found by Euclidean distance between
 * projections (for unit descriptors, the same order as cosine) are re-ranked by their exact distance.
 *
 * Fitting: the sample's covariance (ONNX Runtime products), then subspace iteration with Rayleigh-Ritz for the
 * leading eigenvectors (a full 4096 x 4096 eigendecomposition in JavaScript would take minutes).
 */
import { invalidParameterError } from '../errors.js';
import { mulberry32 } from '../util/random.js';
import { openGemm, type Gemm } from './gemm.js';

/** pgvector's HNSW limit for `vector` columns. */
export const MAX_COMPONENTS = 2000;
/**
 * Default number of components: 128 already found every exact neighbour at 100,000 generated faces, 256 leaves margin
 * (BENCHMARKS.md, "Gallery at scale").
 */
export const DEFAULT_COMPONENTS = 256;
/** Faces the projection is fitted on (a 20,000 x 4096 fit takes about 40 s on 2 cores). */
export const FIT_SAMPLE = 20_000;

export interface Projection {
  /** Input dimension. */
  readonly dim: number;
  /** Output dimension. */
  readonly components: number;
  /** The sample's mean, subtracted before projecting. */
  readonly mean: Float32Array;
  /** components x dim, row-major: orthonormal directions by decreasing variance. */
  readonly basis: Float32Array;
  /** The sample's variance along each direction. */
  readonly variances: Float64Array;
  /** The sample's total variance (trace of its covariance): variances / total is the share kept. */
  readonly totalVariance: number;
  /** How many descriptors it was fitted on. */
  readonly fittedOn: number;
}

export interface FitOptions {
  readonly threads?: number;
  /** Subspace iterations (default 6: the leading 256 directions of fc7 descriptors stop changing after 4). */
  readonly iterations?: number;
  /** Extra directions iterated alongside, for convergence (default 16). */
  readonly oversample?: number;
  readonly seed?: number;
}

/** Share of the sample's variance the projection keeps. */
export function explainedVariance(p: Projection): number {
  let s = 0;
  for (const v of p.variances) s += v;
  return p.totalVariance > 0 ? s / p.totalVariance : 0;
}

/** Rows in one covariance product: 2,048 x 4096 floats is 32 MiB. */
const CHUNK_ROWS = 2048;

/**
 * Fits a PCA of `count` descriptors of `dim` values (`sample`, row-major) keeping `components` directions.
 */
export async function fitProjection(
  sample: Float32Array,
  count: number,
  dim: number,
  components: number,
  options: FitOptions = {},
): Promise<Projection> {
  if (!Number.isInteger(components) || components < 1 || components > Math.min(dim, MAX_COMPONENTS)) {
    throw invalidParameterError('components', `an integer from 1 to ${Math.min(dim, MAX_COMPONENTS)}`, components);
  }
  if (count < 2) throw invalidParameterError('sample', 'at least 2 descriptors to fit a projection on', count);
  if (sample.length !== count * dim)
    throw new Error(`internal: sample of ${sample.length} values, expected ${count} x ${dim}`);
  const mean = new Float64Array(dim);
  for (let r = 0; r < count; r++) {
    const o = r * dim;
    for (let i = 0; i < dim; i++) mean[i] += sample[o + i];
  }
  for (let i = 0; i < dim; i++) mean[i] /= count;
  const mean32 = Float32Array.from(mean);

  const aTa = await openGemm({ transA: true, threads: options.threads });
  const plain = await openGemm({ threads: options.threads });
  const abT = await openGemm({ transB: true, threads: options.threads });
  try {
    // Covariance, accumulated in float64 over centred chunks (centring first: fc7's mean is large against its spread).
    const cov64 = new Float64Array(dim * dim);
    const chunk = new Float32Array(Math.min(CHUNK_ROWS, count) * dim);
    for (let s = 0; s < count; s += CHUNK_ROWS) {
      const rows = Math.min(CHUNK_ROWS, count - s);
      for (let r = 0; r < rows; r++) {
        const o = (s + r) * dim;
        for (let i = 0; i < dim; i++) chunk[r * dim + i] = sample[o + i] - mean32[i];
      }
      const part = await aTa.multiply(
        { data: chunk.subarray(0, rows * dim), rows, cols: dim },
        { data: chunk.subarray(0, rows * dim), rows, cols: dim },
      );
      for (let i = 0; i < cov64.length; i++) cov64[i] += part.data[i];
    }
    const cov = new Float32Array(dim * dim);
    let total = 0;
    for (let i = 0; i < cov.length; i++) cov[i] = cov64[i] / (count - 1);
    for (let i = 0; i < dim; i++) total += cov[i * dim + i];
    const covM = { data: cov, rows: dim, cols: dim };

    // Subspace iteration on rows: Q^T <- orth(Q^T C) (C is symmetric).
    const l = Math.min(dim, components + (options.oversample ?? 16));
    let q = randomRows(l, dim, options.seed ?? 1);
    orthonormalizeRows(q, l, dim);
    for (let t = 0; t < (options.iterations ?? 6); t++) {
      q = (await plain.multiply({ data: q, rows: l, cols: dim }, covM)).data.slice();
      orthonormalizeRows(q, l, dim);
    }
    // Rayleigh-Ritz: the eigenvectors of Q^T C Q rotate Q onto the directions of C.
    const qc = await plain.multiply({ data: q, rows: l, cols: dim }, covM);
    const small = await abT.multiply(qc, { data: q, rows: l, cols: dim });
    const { values, vectors } = symmetricEigen(Float64Array.from(small.data), l);
    const order = [...values.keys()].sort((a, b) => values[b] - values[a]).slice(0, components);
    const basis = new Float32Array(components * dim);
    for (const [k, j] of order.entries()) {
      const row = basis.subarray(k * dim, (k + 1) * dim);
      for (let i = 0; i < l; i++) {
        const w = vectors[i * l + j];
        if (w === 0) continue;
        const qi = q.subarray(i * dim, (i + 1) * dim);
        for (let c = 0; c < dim; c++) row[c] += w * qi[c];
      }
    }
    orthonormalizeRows(basis, components, dim);
    const variances = Float64Array.from(order.map((j) => Math.max(0, values[j])));
    return { dim, components, mean: mean32, basis, variances, totalVariance: total, fittedOn: count };
  } finally {
    await Promise.all([aTa.close(), plain.close(), abT.close()]);
  }
}

/** Projects descriptors on ONNX Runtime: (x - mean) . basis^T, `count` rows at once. */
export interface Projector {
  readonly projection: Projection;
  project(rows: Float32Array, count: number): Promise<Float32Array>;
  close(): Promise<void>;
}

export async function openProjector(projection: Projection, threads?: number): Promise<Projector> {
  const gemm: Gemm = await openGemm({ transB: true, threads });
  const { dim, components, mean, basis } = projection;
  // mean . basis^T in float64, subtracted after the product (x . b - m . b), so rows are not copied to centre them.
  const offset = new Float64Array(components);
  for (let k = 0; k < components; k++) {
    let s = 0;
    for (let i = 0; i < dim; i++) s += mean[i] * basis[k * dim + i];
    offset[k] = s;
  }
  const basisM = { data: basis, rows: components, cols: dim };
  return {
    projection,
    async project(rows, count) {
      if (rows.length !== count * dim)
        throw new Error(`internal: ${rows.length} values to project, expected ${count} x ${dim}`);
      if (count === 0) return new Float32Array(0);
      const out = (await gemm.multiply({ data: rows, rows: count, cols: dim }, basisM)).data;
      for (let r = 0; r < count; r++) for (let k = 0; k < components; k++) out[r * components + k] -= offset[k];
      return out;
    },
    close: () => gemm.close(),
  };
}

/** The projection's bytes for storage: little-endian float32 mean, basis, then float64 variances. */
export function encodeProjection(p: Projection): { mean: Buffer; basis: Buffer; variances: Buffer } {
  const le = (a: Float32Array | Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  return { mean: Buffer.from(le(p.mean)), basis: Buffer.from(le(p.basis)), variances: Buffer.from(le(p.variances)) };
}

export function decodeProjection(stored: {
  dim: number;
  components: number;
  mean: Uint8Array;
  basis: Uint8Array;
  variances: Uint8Array;
  totalVariance: number;
  fittedOn: number;
}): Projection {
  const f32 = (b: Uint8Array, n: number, what: string) => {
    if (b.byteLength !== n * 4)
      throw new Error(`stored projection: ${what} of ${b.byteLength} bytes, expected ${n * 4}`);
    return new Float32Array(new Uint8Array(b).buffer);
  };
  const { dim, components } = stored;
  if (stored.variances.byteLength !== components * 8)
    throw new Error(`stored projection: variances of ${stored.variances.byteLength} bytes, expected ${components * 8}`);
  return {
    dim,
    components,
    mean: f32(stored.mean, dim, 'mean'),
    basis: f32(stored.basis, components * dim, 'basis'),
    variances: new Float64Array(new Uint8Array(stored.variances).buffer),
    totalVariance: stored.totalVariance,
    fittedOn: stored.fittedOn,
  };
}

/** A stored projection as a row of either store's projection table (the same column names in both). */
export interface ProjectionRow {
  readonly dim: number;
  readonly components: number;
  readonly fitted_on: number;
  readonly total_variance: number;
  readonly mean: Uint8Array;
  readonly basis: Uint8Array;
  readonly variances: Uint8Array;
}

/** decodeProjection of a stored row. */
export function decodeProjectionRow(row: ProjectionRow): Projection {
  return decodeProjection({
    dim: row.dim,
    components: row.components,
    mean: row.mean,
    basis: row.basis,
    variances: row.variances,
    // Both drivers give a number; Number() also reads one given as text, as the PostgreSQL reader always did.
    totalVariance: Number(row.total_variance),
    fittedOn: row.fitted_on,
  });
}

function randomRows(rows: number, cols: number, seed: number): Float32Array {
  const next = mulberry32(seed);
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) out[i] = next() - 0.5;
  return out;
}

/** Modified Gram-Schmidt on the rows, twice (one pass loses orthogonality in float32); a row that vanishes stays 0. */
function orthonormalizeRows(m: Float32Array, rows: number, cols: number): void {
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < rows; i++) {
      const ri = m.subarray(i * cols, (i + 1) * cols);
      for (let j = 0; j < i; j++) {
        const rj = m.subarray(j * cols, (j + 1) * cols);
        let d = 0;
        for (let c = 0; c < cols; c++) d += ri[c] * rj[c];
        if (d !== 0) for (let c = 0; c < cols; c++) ri[c] -= d * rj[c];
      }
      let n = 0;
      for (let c = 0; c < cols; c++) n += ri[c] * ri[c];
      n = Math.sqrt(n);
      const inv = n > 1e-20 ? 1 / n : 0;
      for (let c = 0; c < cols; c++) ri[c] *= inv;
    }
  }
}

/**
 * Eigenvalues and eigenvectors of a symmetric n x n matrix (row-major, overwritten), by cyclic Jacobi rotations:
 * n is a few hundred here, where Jacobi is simple and accurate. vectors[i * n + j] is component i of vector j.
 */
export function symmetricEigen(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  // Symmetrise: the product that made `a` is symmetric only up to rounding.
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) a[i * n + j] = a[j * n + i] = (a[i * n + j] + a[j * n + i]) / 2;
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 50; sweep++) {
    let off = 0;
    let diag = 0;
    for (let i = 0; i < n; i++) {
      diag += a[i * n + i] ** 2;
      for (let j = i + 1; j < n; j++) off += a[i * n + j] ** 2;
    }
    if (off <= 1e-22 * diag || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const app = a[p * n + p];
        const aqq = a[q * n + q];
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = a[i * n + i];
  return { values, vectors: v };
}
