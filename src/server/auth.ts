/** Bearer tokens: which routes need one, and a comparison whose time does not depend on where they differ. */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AuthMode } from './options.js';
import type { Access } from './schemas.js';

export function needsToken(auth: AuthMode, access: Access): boolean {
  if (auth === 'none' || access === 'open') return false;
  return access === 'write' || auth === 'all';
}

/**
 * Whether an Authorization header carries `token`. Both sides are hashed first, so the comparison is over equal
 * lengths and takes the same time whatever the header holds.
 */
export function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '');
  const given = createHash('sha256')
    .update(m ? m[1] : '')
    .digest();
  const expected = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, expected) && m !== null;
}
