/**
 * The ROC curve as a self-contained SVG (hand-written: a polyline and axes need no plotting library), or as a PNG
 * rasterised from that SVG by sharp. FAR is on a log axis, from the smallest non-zero FAR the data can show to 1.
 */
import { rename, rm, writeFile } from 'node:fs/promises';
import { extname } from 'node:path';
import sharp from 'sharp';
import { fileError, usageError } from '../errors.js';
import { checkOutputPath } from '../util/files.js';
import type { RocPoint } from './roc.js';

export interface RocPlotInfo {
  readonly title: string;
  readonly auc: number;
  readonly eer: number;
  readonly differentPairs: number;
}

const W = 640;
const H = 480;
const M = { left: 70, right: 20, top: 40, bottom: 60 };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function rocSvg(curve: readonly RocPoint[], info: RocPlotInfo): string {
  const minDecade = Math.min(-1, Math.floor(Math.log10(1 / Math.max(1, info.differentPairs))));
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (far: number) => M.left + ((Math.log10(Math.max(far, 10 ** minDecade)) - minDecade) / -minDecade) * pw;
  const y = (tar: number) => M.top + (1 - tar) * ph;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 ` +
      `0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  for (let d = minDecade; d <= 0; d++) {
    const px = x(10 ** d).toFixed(1);
    parts.push(`<line x1="${px}" y1="${M.top}" x2="${px}" y2="${M.top + ph}" stroke="#ddd"/>`);
    parts.push(`<text x="${px}" y="${M.top + ph + 18}" text-anchor="middle">1e${d}</text>`);
  }
  for (let t = 0; t <= 10; t += 2) {
    const py = y(t / 10).toFixed(1);
    parts.push(`<line x1="${M.left}" y1="${py}" x2="${M.left + pw}" y2="${py}" stroke="#ddd"/>`);
    parts.push(
      `<text x="${M.left - 8}" y="${py}" text-anchor="end" dominant-baseline="middle">${(t / 10).toFixed(1)}</text>`,
    );
  }
  parts.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="black"/>`);
  // A step curve: TAR holds between points, as a threshold sweep does.
  const pts: string[] = [];
  let prevTar = 0;
  for (const p of curve) {
    pts.push(`${x(p.far).toFixed(2)},${y(prevTar).toFixed(2)}`, `${x(p.far).toFixed(2)},${y(p.tar).toFixed(2)}`);
    prevTar = p.tar;
  }
  parts.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="#c0392b" stroke-width="2"/>`);
  parts.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(info.title)}</text>`);
  parts.push(`<text x="${M.left + pw / 2}" y="${H - 15}" text-anchor="middle">false accept rate (log scale)</text>`);
  parts.push(
    `<text x="18" y="${M.top + ph / 2}" text-anchor="middle" ` +
      `transform="rotate(-90 18 ${M.top + ph / 2})">true accept rate</text>`,
  );
  parts.push(
    `<text x="${M.left + pw - 10}" y="${M.top + ph - 30}" text-anchor="end">AUC ${info.auc.toFixed(4)}</text>`,
  );
  parts.push(
    `<text x="${M.left + pw - 10}" y="${M.top + ph - 12}" text-anchor="end">EER ${(info.eer * 100).toFixed(2)}%</text>`,
  );
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

/**
 * Writes the curve to `path`: SVG for .svg, PNG for .png; through a temporary file and a rename. The path must be a
 * regular file (or absent) and none of `inputs`.
 */
export async function writeRocPlot(
  path: string,
  curve: readonly RocPoint[],
  info: RocPlotInfo,
  inputs: readonly string[] = [],
): Promise<void> {
  const ext = extname(path).toLowerCase();
  if (ext !== '.svg' && ext !== '.png') throw usageError(`--roc ${path}: expected a .svg or .png file name`, '--roc');
  checkOutputPath(path, inputs);
  const svg = rocSvg(curve, info);
  const data = ext === '.svg' ? Buffer.from(svg) : await sharp(Buffer.from(svg)).png().toBuffer();
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw fileError(path, err, 'write');
  }
}
