import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { Command } from 'commander';
import sharp from 'sharp';
import { fileError, usageError, VggFaceError } from '../../errors.js';
import { resolveAlignOptions } from '../../face/align.js';
import { resolveDetectOptions } from '../../face/detector.js';
import { extractFacesSettled } from '../../face/pipeline.js';
import { envValue } from '../../util/env.js';
import { checkOutputPath, fileKind, InputFiles } from '../../util/files.js';
import { DESCRIBE_OPTIONS, FACE_OPTIONS } from '../../options.js';
import { reportItemError, type CommandContext } from '../context.js';
import { addFaceOptions, faceOptions, openDetector, threadsOption, type FaceFlags } from '../face-options.js';
import { faceJson, writeLine } from '../../output/json.js';
import { flagArgs, parseFlag, resolveFlag } from '../options.js';
import { progressBar } from '../progress.js';

interface FacesFlags extends FaceFlags {
  output?: string;
  overwrite?: boolean;
  size?: string;
  threads?: string;
  cacheDir?: string;
  maxPixels?: string;
}

/** Photos decoded and detected at once. */
const CONCURRENCY = 4;

/**
 * File stems unique across the inputs: a second "x.jpg" from another folder becomes "x_2" (or "x_3" when a photo
 * is itself named "x_2"), so no crop of this run replaces another.
 */
export function uniqueStems(images: readonly string[]): string[] {
  const used = new Set<string>();
  return images.map((path) => {
    const base = basename(path, extname(path)) || 'image';
    let stem = base;
    for (let n = 2; used.has(stem); n++) stem = `${base}_${n}`;
    used.add(stem);
    return stem;
  });
}

/**
 * Crops an earlier run left in `dir` for these stems (`<stem>-<n>.png`): refused unless --overwrite, so a second
 * run never silently mixes its crops with stale ones; with --overwrite each must still be a regular file that is
 * none of the inputs. Checked before any crop is written.
 */
async function checkEarlierCrops(
  dir: string,
  stems: readonly string[],
  overwrite: boolean,
  inputs: InputFiles,
): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw fileError(dir, err);
  }
  const wanted = new Set(stems);
  const earlier = names.filter((name) => {
    const m = /^(.*)-[1-9]\d*\.png$/.exec(name);
    return m !== null && wanted.has(m[1]);
  });
  if (earlier.length === 0) return;
  if (!overwrite) {
    const more =
      earlier.length > 1
        ? ` (and ${earlier.length - 1} more crop${earlier.length > 2 ? 's' : ''} of these photos)`
        : '';
    throw usageError(
      `${join(dir, earlier[0])} exists${more}: pass --overwrite to replace the ` +
        'crops of an earlier run, or choose another folder',
      '--output',
    );
  }
  for (const name of earlier) checkOutputPath(join(dir, name), inputs);
}

async function writePngAtomic(
  path: string,
  crop: { data: Uint8Array; width: number; height: number },
  inputs: InputFiles,
): Promise<void> {
  checkOutputPath(path, inputs);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await sharp(crop.data, { raw: { width: crop.width, height: crop.height, channels: 3 } })
      .png()
      .toFile(tmp);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw fileError(path, err, 'write');
  }
}

/** The crops' folder: created if missing; anything there that is not a folder (or a link to one) is refused. */
async function makeOutputDir(dir: string): Promise<void> {
  let st;
  try {
    st = await stat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fileError(dir, err, 'write');
  }
  if (st && !st.isDirectory())
    throw new VggFaceError('E_IO', `${dir}: not a directory: ${fileKind(st)}; -o names the folder for the crops`, {
      input: dir,
    });
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw fileError(dir, err, 'create');
  }
}

export function facesCommand(ctx: CommandContext): Command {
  const cmd = new Command('faces')
    .summary('find the faces in photos and write their aligned crops as PNG')
    .description(
      'Finds every face in each photo (YuNet), aligns it upright as describe does and writes the crop to\n' +
        'DIR/<photo name>-<n>.png (n = 1 for the largest face). Prints one JSON object per face:\n' +
        '  {"image": "<path as given>", "face": {"box", "score", "landmarks"}, "crop": "<png path>"}\n' +
        'and {"image": "<path>", "faces": 0} for a photo with no face. No descriptor model is needed.\n' +
        'Crops an earlier run left for these photos are not replaced without --overwrite.',
    )
    .argument('<images...>', 'photos (JPEG, PNG, WebP, TIFF, GIF, AVIF)')
    .requiredOption('-o, --output <dir>', 'folder for the crops (created if missing)')
    .option(...flagArgs(FACE_OPTIONS.size))
    .option('--threads <n>', 'ONNX Runtime threads (default: number of cores)')
    .option('--cache-dir <dir>', 'cache for the downloaded detector (default: $VGGFACE_CACHE or ~/.cache/vggface)')
    .option(...flagArgs(DESCRIBE_OPTIONS.maxPixels))
    .option(
      '--overwrite',
      'replace crops an earlier run left in the folder (without it, an ' +
        'existing crop stops the run before anything is written)',
    );
  addFaceOptions(cmd, { detectorChoice: false });
  return cmd.action(async (images: string[], flags: FacesFlags) => {
    if (!flags.output) throw usageError('--output is required');
    const faces = faceOptions(flags);
    const detect = resolveDetectOptions({
      minScore: faces.minScore,
      minFaceSize: faces.minFaceSize,
      maxFaces: faces.maxFaces,
      maxPixels: parseFlag(DESCRIBE_OPTIONS.maxPixels, flags.maxPixels),
    });
    const align = resolveAlignOptions({
      align: faces.align,
      margin: faces.margin,
      size: resolveFlag(FACE_OPTIONS.size, flags.size),
    });
    const threads = threadsOption(flags);
    const out = flags.output;
    await makeOutputDir(out);
    const stems = uniqueStems(images);
    const detectorModel = faces.detectorModel ?? envValue('detectorModel');
    const inputs = new InputFiles(detectorModel ? [...images, detectorModel] : images);
    await checkEarlierCrops(out, stems, flags.overwrite ?? false, inputs);
    const detector = await openDetector({ model: faces.detectorModel, cacheDir: flags.cacheDir, threads });
    const bar = progressBar('Finding faces', images.length, { threshold: 16 });
    try {
      for (let start = 0; start < images.length; start += CONCURRENCY) {
        const items = images.slice(start, start + CONCURRENCY).map((path) => ({ input: path, label: path }));
        const results = await extractFacesSettled(detector, items, detect, align);
        for (let k = 0; k < results.length; k++) {
          const r = results[k];
          const label = JSON.stringify(items[k].label);
          if (r.error) {
            reportItemError(ctx, r.error);
          } else if (r.photo.faces.length === 0) {
            ctx.stderr.write(`vggface: ${items[k].label}: no face found\n`);
            await writeLine(ctx.stdout, `{"image":${label},"faces":0}`);
          } else {
            for (let n = 0; n < r.photo.faces.length; n++) {
              const f = r.photo.faces[n];
              const file = join(out, `${stems[start + k]}-${n + 1}.png`);
              await writePngAtomic(file, f.crop, inputs);
              await writeLine(
                ctx.stdout,
                `{"image":${label},"face":${faceJson(f.face)},"crop":${JSON.stringify(file)}}`,
              );
            }
          }
        }
        bar.update(Math.min(images.length, start + CONCURRENCY));
      }
    } finally {
      bar.stop();
      await detector.close();
    }
  });
}
