/** The benchmark sections, in the order they run. One file per section under sections/. */
import type { Section } from './harness.js';
import { modelSection } from './sections/model.js';
import { facesSection } from './sections/faces.js';
import { precisionSection } from './sections/precision.js';
import { readersSection } from './sections/readers.js';
import { searchSection } from './sections/search.js';
import { serveSection } from './sections/serve.js';
import { queueSection } from './sections/queue.js';
import { browserSection } from './sections/browser.js';

export const SECTIONS: readonly Section[] = [
  modelSection,
  readersSection,
  precisionSection,
  facesSection,
  searchSection,
  serveSection,
  queueSection,
  browserSection,
];
