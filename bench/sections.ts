/** The benchmark sections, in the order they run. One file per section under sections/. */
import type { Section } from './harness.js';
import { modelSection } from './sections/model.js';
import { precisionSection } from './sections/precision.js';

export const SECTIONS: readonly Section[] = [modelSection, precisionSection];
