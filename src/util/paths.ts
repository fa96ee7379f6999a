import { homedir } from 'node:os';
import { join } from 'node:path';
import { envValue, otherEnvValue } from './env.js';

/**
 * The cache folder: $VGGFACE_CACHE, else $XDG_CACHE_HOME/vggface, else ~/.cache/vggface.
 * Holds downloaded weights (`weights/`), converted models (`models/`) and the detector (`detector/`).
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const cache = envValue('cache', env);
  if (cache) return cache;
  const xdg = otherEnvValue('XDG_CACHE_HOME', env);
  if (xdg) return join(xdg, 'vggface');
  return join(homedir(), '.cache', 'vggface');
}
