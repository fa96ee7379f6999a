/**
 * The built-in calibration set: deterministic synthetic images in the "dead leaves" model (overlapping shaded
 * ellipses whose sizes follow a power law), which has the statistics that matter for activation ranges in
 * natural photographs (scale invariance, flat regions, sharp occlusion edges, colour correlated with
 * brightness). Generated in code, so converting to int8 works offline and without shipping photographs.
 */
import { INPUT_SIZE } from '../weights/topology.js';
import { xorshift32 } from '../util/random.js';

export const SYNTHETIC_SET_NAME = 'built-in synthetic dead-leaves set v1';

/** Seeds spread over the state space (Knuth's multiplicative hash), so image n and n+1 look unrelated. */
const rng = (seed: number) => xorshift32(seed * 2654435761);

const clamp255 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));

/** One 224x224 RGB image (HWC, uint8), the same for the same seed. */
export function deadLeavesImage(seed: number, size = INPUT_SIZE): Uint8Array {
  const next = rng(seed);
  const img = new Float32Array(size * size * 3);
  const colour = (): [number, number, number] => {
    // Brightness first, then a modest chroma around it: channels stay correlated as in photographs.
    const l = 20 + next() * 215;
    return [l + (next() - 0.5) * 80, l + (next() - 0.5) * 50, l + (next() - 0.5) * 80];
  };
  const bg = colour();
  for (let i = 0; i < size * size; i++) img.set(bg, i * 3);
  const leaves = 250 + Math.floor(next() * 250);
  const rMin = 2;
  const rMax = size * 0.45;
  for (let n = 0; n < leaves; n++) {
    const r = rMin * (rMax / rMin) ** next(); // log-uniform radius: a power-law size distribution
    const aspect = 0.5 + next();
    const angle = next() * Math.PI;
    const [ca, sa] = [Math.cos(angle), Math.sin(angle)];
    const cx = -r + next() * (size + 2 * r);
    const cy = -r + next() * (size + 2 * r);
    const [cr, cg, cb] = colour();
    // A linear shading across the leaf (light falling on a curved surface).
    const gx = (next() - 0.5) * 1.5;
    const gy = (next() - 0.5) * 1.5;
    const rx = r * aspect;
    const ry = r / aspect;
    const ext = Math.ceil(Math.max(rx, ry));
    const x0 = Math.max(0, Math.floor(cx - ext));
    const x1 = Math.min(size - 1, Math.ceil(cx + ext));
    const y0 = Math.max(0, Math.floor(cy - ext));
    const y1 = Math.min(size - 1, Math.ceil(cy + ext));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const dx = x - cx;
        const dy = y - cy;
        const u = (dx * ca + dy * sa) / rx;
        const v = (-dx * sa + dy * ca) / ry;
        if (u * u + v * v > 1) continue;
        const shade = gx * dx + gy * dy;
        const k = (y * size + x) * 3;
        img[k] = cr + shade;
        img[k + 1] = cg + shade;
        img[k + 2] = cb + shade;
      }
    }
  }
  // A light blur (optics) and sensor noise.
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        let w = 0;
        for (let dy = -1; dy <= 1; dy++) {
          const yy = y + dy;
          if (yy < 0 || yy >= size) continue;
          for (let dx = -1; dx <= 1; dx++) {
            const xx = x + dx;
            if (xx < 0 || xx >= size) continue;
            const wt = dx === 0 && dy === 0 ? 4 : dx === 0 || dy === 0 ? 2 : 1;
            s += wt * img[(yy * size + xx) * 3 + c];
            w += wt;
          }
        }
        out[(y * size + x) * 3 + c] = clamp255(s / w + (next() - 0.5) * 6);
      }
    }
  }
  return out;
}
