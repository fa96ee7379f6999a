/** Decodes a batch of inputs concurrently on the libuv pool (sharp does not block the event loop). */
import { VggFaceError } from '../errors.js';
import { loadSquare, type ImageInput, type ResizeOptions } from './decode.js';
import type { RawImage } from './types.js';

export interface DecodedItem {
  readonly label: string;
  readonly image?: RawImage;
  readonly error?: VggFaceError;
}

/** Never rejects: each item carries its image or its error. */
export async function decodeBatch(
  items: readonly { input: ImageInput; label: string }[],
  size: number,
  options: ResizeOptions,
): Promise<DecodedItem[]> {
  const settled = await Promise.allSettled(items.map((it) => loadSquare(it.input, it.label, size, options)));
  return settled.map((s, i) => {
    if (s.status === 'fulfilled') return { label: items[i].label, image: s.value };
    const err =
      s.reason instanceof VggFaceError
        ? s.reason
        : new VggFaceError('E_IMAGE', `${items[i].label}: ${(s.reason as Error)?.message ?? String(s.reason)}`, {
            input: items[i].label,
            cause: s.reason,
          });
    return { label: items[i].label, error: err };
  });
}
