/**
 * The image types every stage shares (Node and the browser build alike): what decoding produces and what the
 * resizing, the face detector, the aligner and the model read. Types only, importing nothing.
 */

/** A decoded image: 8-bit RGB, row-major HWC. */
export interface RawImage {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: 3;
}
