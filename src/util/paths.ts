import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * The cache folder: $VGGFACE_CACHE, else $XDG_CACHE_HOME/vggface, else ~/.cache/vggface.
 * Holds downloaded weights (`weights/`), converted models (`models/`) and the detector (`detector/`).
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.VGGFACE_CACHE) return env.VGGFACE_CACHE;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'vggface');
  return join(homedir(), '.cache', 'vggface');
}
