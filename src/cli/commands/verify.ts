import { Command } from 'commander';
import { dirname } from 'node:path';
import { usageError, VggFaceError } from '../../errors.js';
import { METRICS, type Metric } from '../../distance/distance.js';
import { defaultCacheDir } from '../../util/paths.js';
import { checkPairImages, readPairList, type ImagePair } from '../../verify/pairs.js';
import { resolveThreshold } from '../../verify/thresholds.js';
import { modelIdentity } from '../../model/identity.js';
import { describeDistinct, verifyDescriptors, type Described } from '../../verify/verify.js';
import * as check from '../../validate.js';
import { float32ToString, writeLine } from '../../output/json.js';
import { reportItemError, type CommandContext } from '../context.js';
import { addImageOptions, addModelOptions, flagArgs, imageOptions, resolveFlag, type ModelFlags } from '../options.js';
import { DESCRIBE_OPTIONS } from '../../options.js';
import { addFaceOptions, withPhotosAndModel, type FaceFlags } from '../face-options.js';
import { faceJson } from '../../output/json.js';

interface VerifyFlags extends ModelFlags, FaceFlags {
  pairs?: string;
  images?: string;
  metric: string;
  threshold?: string;
  batch?: string;
  fit?: string;
  maxPixels?: string;
}

/** --metric and --threshold, shared by verify and gallery search. */
export function addThresholdOptions(cmd: Command): Command {
  return cmd
    .option('--metric <metric>', `distance: ${METRICS.join(', ')}`, 'cosine')
    .option(
      '--threshold <t>',
      'same person when distance <= t (default: the calibrated threshold ' +
        "for this model, or deepface's in deepface mode)",
    );
}

export function thresholdFlags(flags: { metric: string; threshold?: string }): { metric: Metric; explicit?: number } {
  const metric = check.oneOf('--metric', flags.metric, METRICS) as Metric;
  const explicit =
    flags.threshold === undefined ? undefined : check.number('--threshold', flags.threshold, 0, Number.MAX_VALUE);
  return { metric, explicit };
}

const num = (x: number) => float32ToString(Math.fround(x));

export function verifyCommand(ctx: CommandContext): Command {
  const cmd = new Command('verify')
    .summary('same person? compare two images, or every pair of a pairs file')
    .description(
      'Prints {"verified", "distance", "threshold", "metric"} as JSON for ' +
        'the pair A B, or one line per pair of --pairs\n' +
        '(a CSV with file_x,file_y[,Decision] or an LFW pairs.txt), with the ' +
        "pair's line and images. Each distinct image\n" +
        'is described once: the largest face found in each photo (its box is printed as face1/face2), or with\n' +
        '--detector none the image as given. A pair matches when distance <= threshold.',
    )
    .argument('[images...]', 'two images: A B')
    .option('--pairs <file>', 'verify every pair of this file instead')
    .option('--images <dir>', "folder the pairs file names images in (default: the pairs file's folder)")
    .option(...flagArgs(DESCRIBE_OPTIONS.batchSize));
  addThresholdOptions(cmd);
  addModelOptions(cmd);
  addImageOptions(cmd);
  addFaceOptions(cmd, { detectorChoice: true });
  return cmd.action(async (images: string[], flags: VerifyFlags) => {
    const { metric, explicit } = thresholdFlags(flags);
    const batchSize = resolveFlag(DESCRIBE_OPTIONS.batchSize, flags.batch);
    const maxPixels = imageOptions(flags).maxPixels;
    let pairs: readonly ImagePair[];
    if (flags.pairs !== undefined) {
      if (images.length > 0) throw usageError('give either two images or --pairs, not both');
      const list = await readPairList(flags.pairs, flags.images ?? dirname(flags.pairs));
      await checkPairImages(list);
      pairs = list.pairs;
    } else {
      if (images.length !== 2)
        throw usageError(`verify needs exactly two images (or --pairs FILE), got ${images.length}`);
      pairs = [{ a: images[0], b: images[1], line: 0 }];
    }
    const cacheDir = flags.cacheDir ?? defaultCacheDir();
    const faces = (a: Described, b: Described) =>
      a.face && b.face ? `,"face1":${faceJson(a.face)},"face2":${faceJson(b.face)}` : '';
    await withPhotosAndModel(flags, async (photos, model) => {
      const { threshold } = await resolveThreshold({
        metric,
        explicit,
        cacheDir,
        identity: await modelIdentity(model),
      });
      const described = await describeDistinct(
        model,
        pairs.flatMap((p) => [p.a, p.b]),
        { batchSize, maxPixels, ...photos.options },
      );
      if (flags.pairs === undefined) {
        const [a, b] = [described.get(pairs[0].a)!, described.get(pairs[0].b)!];
        if (a.error) throw a.error;
        if (b.error) throw b.error;
        const v = verifyDescriptors(a.descriptor, b.descriptor, metric, threshold);
        await writeLine(
          ctx.stdout,
          `{"verified":${v.verified},"distance":${num(v.distance)},"threshold":` +
            `${v.threshold},"metric":"${v.metric}"${faces(a, b)}}`,
        );
        return;
      }
      for (const p of pairs) {
        const [a, b] = [described.get(p.a)!, described.get(p.b)!];
        const failed = a.error ?? b.error;
        if (failed) {
          reportItemError(
            ctx,
            new VggFaceError(failed.code, `${flags.pairs}: line ${p.line}: ${failed.message}`, { input: flags.pairs }),
          );
          continue;
        }
        const v = verifyDescriptors(a.descriptor!, b.descriptor!, metric, threshold);
        const same = p.same === undefined ? '' : `,"same":${p.same}`;
        await writeLine(
          ctx.stdout,
          `{"line":${p.line},"image1":${JSON.stringify(p.a)},"image2":${JSON.stringify(p.b)},"verified":${v.verified}` +
            `,"distance":${num(v.distance)},"threshold":${v.threshold},"metric":"${v.metric}"${same}${faces(a, b)}}`,
        );
      }
    });
  });
}
