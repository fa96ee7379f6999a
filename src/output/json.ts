/** Output helpers: compact JSON numbers and writing lines to stdout with back-pressure. */
import type { DetectedFace } from '../face/types.js';

/** The shortest decimal that reads back as the same float32 (e.g. 0.1, not 0.10000000149011612). */
export function float32ToString(x: number): string {
  if (!Number.isFinite(x)) return 'null';
  if (x === 0) return '0';
  for (let p = 6; p < 9; p++) {
    const s = x.toPrecision(p);
    if (Math.fround(Number(s)) === x) return String(Number(s));
  }
  return String(Number(x.toPrecision(9)));
}

export function vectorJson(v: Float32Array): string {
  let s = '[';
  for (let i = 0; i < v.length; i++) s += (i ? ',' : '') + float32ToString(v[i]);
  return s + ']';
}

/** Writes to a stream and waits when its buffer is full, so 100,000 lines never pile up in memory. */
export async function writeLine(stream: NodeJS.WritableStream, line: string): Promise<void> {
  if (!stream.write(line + '\n')) await new Promise<void>((resolve) => stream.once('drain', resolve));
}

const px = (v: number) => Math.round(v * 100) / 100;

/** A detected face as JSON: box and landmarks in photo pixels (2 decimals), score (4 decimals). */
export function faceJson(face: DetectedFace): string {
  const { box, landmarks } = face;
  const points = Object.entries(landmarks).map(([name, p]) => `${JSON.stringify(name)}:[${px(p[0])},${px(p[1])}]`);
  return (
    `{"box":{"x":${px(box.x)},"y":${px(box.y)},"width":${px(box.width)},"height":${px(box.height)}},` +
    `"score":${Math.round(face.score * 1e4) / 1e4},"landmarks":{${points.join(',')}}}`
  );
}
