import { Command } from 'commander';
import { VggFace, LAYERS, type Layer } from '../../vggface.js';
import { FaceDetector } from '../../face/detector.js';
import { usageError } from '../../errors.js';
import * as check from '../../validate.js';
import { addImageOptions, addModelOptions, imageOptions, modelOptions, type ModelFlags } from '../options.js';
import { addFaceOptions, detectorDownloadProgress, faceOptions, threadsOption, type FaceFlags } from '../face-options.js';
import { progressBar } from '../progress.js';
import { faceJson, vectorJson, writeLine } from '../format.js';
import { reportItemError, type CommandContext } from '../context.js';

interface DescribeFlags extends ModelFlags, FaceFlags {
  layer: string;
  raw?: boolean;
  batch: string;
  fit?: string;
  maxPixels?: string;
}

export function describeCommand(ctx: CommandContext): Command {
  const cmd = new Command('describe')
    .summary('print the descriptor of every face in each photo, one JSON object per line')
    .description(
      'Finds every face in each photo (YuNet), aligns it upright and writes its VGG-Face descriptor (fc7 after ReLU,\n' +
        'L2-normalised) as one JSON object per face to stdout, largest face first:\n' +
        '  {"image": "<path as given>", "face": {"box": {"x","y","width","height"}, "score", "landmarks": {...}}, "descriptor": [numbers]}\n' +
        'Box and landmarks are in pixels of the photo as displayed (EXIF orientation applied). A photo with no face\n' +
        'gives {"image": "<path>", "faces": 0} (and a note on stderr); it is not an error.\n' +
        'With --detector none each image is described as given (expected: a face crop):\n' +
        '  {"image": "<path as given>", "descriptor": [numbers]}\n' +
        'Images that cannot be read are reported on stderr; the others go on, and the exit code is 1.',
    )
    .argument('<images...>', 'image files (JPEG, PNG, WebP, TIFF, GIF, AVIF)')
    .option('--layer <layer>', `which layer: ${LAYERS.join(', ')}`, 'fc7')
    .option('--raw', 'do not L2-normalise the vector')
    .option('--batch <n>', 'images per inference call', '8');
  addModelOptions(cmd);
  addImageOptions(cmd);
  addFaceOptions(cmd, { detectorChoice: true });
  return cmd.action(async (images: string[], flags: DescribeFlags) => {
    const layer = check.oneOf('--layer', flags.layer, LAYERS) as Layer;
    const batchSize = check.integer('--batch', flags.batch, 1, 256);
    const image = imageOptions(flags);
    const faces = faceOptions(flags);
    if (faces.detector !== 'none' && flags.fit !== undefined) throw usageError('--fit: only with --detector none (detected faces are cropped square around the face)', '--fit');
    // The detector first: it is small, and a missing one should fail before the large model loads.
    const detector =
      faces.detector === 'none'
        ? undefined
        : await FaceDetector.open({ model: faces.detectorModel, cacheDir: flags.cacheDir, threads: threadsOption(flags), onDownloadProgress: detectorDownloadProgress() });
    let model: VggFace;
    try {
      model = await VggFace.load(modelOptions(flags));
    } catch (err) {
      await detector?.close();
      throw err;
    }
    const bar = progressBar('Describing', images.length, { threshold: 16 });
    const options = { layer, normalize: !flags.raw, batchSize, ...image, onProgress: (d: number) => bar.update(d) };
    try {
      if (!detector) {
        for await (const r of model.describeEach(images, options)) {
          if (r.error) reportItemError(ctx, r.error);
          else await writeLine(ctx.stdout, `{"image":${JSON.stringify(r.label)},"descriptor":${vectorJson(r.descriptor)}}`);
        }
      } else {
        const { align, margin, maxFaces, minFaceSize, minScore } = faces;
        for await (const r of model.describeFaces(images, { ...options, detector, align, margin, maxFaces, minFaceSize, minScore })) {
          const label = JSON.stringify(r.label);
          if (r.error) {
            reportItemError(ctx, r.error);
          } else if (r.faces.length === 0) {
            ctx.stderr.write(`vggface: ${r.label}: no face found\n`);
            await writeLine(ctx.stdout, `{"image":${label},"faces":0}`);
          } else {
            for (const f of r.faces) await writeLine(ctx.stdout, `{"image":${label},"face":${faceJson(f.face)},"descriptor":${vectorJson(f.descriptor)}}`);
          }
        }
      }
    } finally {
      bar.stop();
      await model.close();
      await detector?.close();
    }
  });
}
