import { lstatSync, openSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { fileError, VggFaceError } from '../errors.js';

/** What a file-system entry is, in words, for messages. */
export function fileKind(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

/**
 * Stats a file to read and refuses anything but a regular file (following links), naming what it is: a FIFO
 * would block the open, /dev/zero never ends, and neither has the size or random access the readers rely on.
 */
export function regularFileStat(path: string): Stats {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    throw fileError(path, err);
  }
  if (st.isDirectory()) throw fileError(path, Object.assign(new Error('is a directory'), { code: 'EISDIR' }));
  if (!st.isFile()) throw new VggFaceError('E_IO', `${path}: not a regular file: ${fileKind(st)}`, { input: path });
  return st;
}

/**
 * Opens a regular file for reading; a missing file, a directory, a device or FIFO or a permission problem becomes an
 * error naming the path.
 */
export function openForReading(path: string): number {
  regularFileStat(path); // before the open: opening a FIFO blocks until a writer comes
  try {
    return openSync(path, 'r');
  } catch (err) {
    throw fileError(path, err);
  }
}

/**
 * The files a run reads, identified by device and inode, for outputs to be checked against. Stat'ed once, on the
 * first output that exists, so many outputs (the crops of `faces`) cost one pass over the inputs at most.
 */
export class InputFiles {
  private ids: Map<string, string> | undefined;

  constructor(private readonly paths: readonly string[]) {}

  /** The input that is the same file as `st`, if any. */
  match(st: Stats): string | undefined {
    if (!this.ids) {
      this.ids = new Map();
      for (const path of this.paths) {
        try {
          const other = statSync(path);
          const id = `${other.dev}:${other.ino}`;
          if (!this.ids.has(id)) this.ids.set(id, path);
        } catch {
          // missing inputs are reported when they are read
        }
      }
    }
    return this.ids.get(`${st.dev}:${st.ino}`);
  }
}

/** What {@link checkOutputPath} found at the path. */
export interface OutputTarget {
  /** A regular file is there (and will be replaced). */
  readonly exists: boolean;
  /** Its size in bytes (0 when absent). */
  readonly size: number;
}

/**
 * The one check every writer makes before it writes `path`: there may be nothing there, or a regular file that is
 * none of `inputs` (compared by device and inode, so `./x` and `x`, a hard link or a link to an input are caught).
 * Anything else is refused, with nothing written: a symbolic link (writers replace the entry by a rename, so the
 * link, not its target, would be lost), a directory, a FIFO, a device (as root, `-o /dev/null` would replace the
 * device) or a socket. Missing inputs are skipped: they are reported when they are read. Inputs are looked at only
 * when a file is there, so a run over 100,000 photos into a new output stats none of them; pass an
 * {@link InputFiles} to check many outputs against the same inputs.
 */
export function checkOutputPath(path: string, inputs: readonly string[] | InputFiles = []): OutputTarget {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { exists: false, size: 0 };
    throw fileError(path, err, 'write');
  }
  if (st.isSymbolicLink()) {
    let target = '';
    try {
      target = ` to ${readlinkSync(path)}`;
    } catch {
      // unreadable link: say no more than what it is
    }
    throw new VggFaceError(
      'E_IO',
      `${path}: not a regular file: a symbolic link${target}; refusing to replace ` +
        'it (write to the file it points to, or remove the link)',
      { input: path },
    );
  }
  if (!st.isFile())
    throw new VggFaceError('E_IO', `${path}: not a regular file: ${fileKind(st)}; refusing to write over it`, {
      input: path,
    });
  const input = (inputs instanceof InputFiles ? inputs : new InputFiles(inputs)).match(st);
  if (input !== undefined) {
    const same = input === path ? '' : ` (${input})`;
    throw new VggFaceError(
      'E_IO',
      `${path}: is one of the inputs${same}; refusing to overwrite it: choose another output file`,
      { input: path },
    );
  }
  return { exists: true, size: st.size };
}
