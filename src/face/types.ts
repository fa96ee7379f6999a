/** What the face detector finds, in the coordinates of the original (EXIF-oriented) image, in pixels. */

/** A point: pixel coordinates where the centre of pixel (i, j) is at (i, j). */
export type Point = readonly [x: number, y: number];

/**
 * YuNet's five landmarks. "Right" and "left" are the subject's: in a frontal photo the right eye is on the
 * image's left.
 */
export interface Landmarks {
  readonly rightEye: Point;
  readonly leftEye: Point;
  readonly noseTip: Point;
  readonly mouthRight: Point;
  readonly mouthLeft: Point;
}

export const LANDMARK_NAMES = ['rightEye', 'leftEye', 'noseTip', 'mouthRight', 'mouthLeft'] as const;

export interface Box {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export interface DetectedFace {
  readonly box: Box;
  /** Detection confidence, sqrt(class * objectness), 0..1. */
  readonly score: number;
  readonly landmarks: Landmarks;
}
