import { Command } from 'commander';
import { VggFace } from '../../vggface.js';
import { usageError } from '../../errors.js';
import { faceSettings } from '../../describe-options.js';
import { DESCRIBE_OPTIONS } from '../../options.js';
import { flagArgs, resolveFlag } from '../options.js';
import {
  addDescribeInputOptions,
  checkFit,
  describeInputs,
  openDetector,
  threadsOption,
  type DescribeInputFlags,
} from '../face-options.js';
import { progressBar } from '../progress.js';
import { collectImages } from '../inputs.js';
import {
  checkOutputTarget,
  openDescriptorSink,
  outputFormatFor,
  OUTPUT_FORMATS,
  type DescriptorSink,
} from '../../output/descriptor-sink.js';
import { reportItemError, type CommandContext } from '../context.js';
import { envValue } from '../../util/env.js';

interface DescribeFlags extends DescribeInputFlags {
  layer?: string;
  raw?: boolean;
  batch?: string;
  list?: string;
  output?: string;
  outputFormat?: string;
  resume?: boolean;
  overwrite?: boolean;
}

export function describeCommand(ctx: CommandContext): Command {
  const cmd = new Command('describe')
    .summary('print the descriptor of every face in each photo, one JSON object per line')
    .description(
      'Finds every face in each photo (YuNet), aligns it upright and ' +
        'writes its VGG-Face descriptor (fc7 after ReLU,\n' +
        'L2-normalised) as one JSON object per face to stdout, largest face first:\n' +
        '  {"image": "<path as given>", "face": {"box": {"x","y","width","height"}, ' +
        '"score", "landmarks": {...}}, "descriptor": [numbers]}\n' +
        'Box and landmarks are in pixels of the photo as displayed (EXIF orientation applied). A photo with no face\n' +
        'gives {"image": "<path>", "faces": 0} (and a note on stderr); it is not an error.\n' +
        'With --detector none each image is described as given (expected: a face crop):\n' +
        '  {"image": "<path as given>", "descriptor": [numbers]}\n' +
        'Images that cannot be read are reported on stderr; the others go on, and the exit code is 1.\n' +
        'With -o FILE.npy or FILE.f32 the descriptors go to a float32 ' +
        'matrix, one row per face, and FILE.index.jsonl\n' +
        'says which rows belong to which image; --resume continues a stopped run without writing any image twice.',
    )
    .argument('[images...]', 'image files (JPEG, PNG, WebP, TIFF, GIF, AVIF) or folders (searched recursively)')
    .option('--list <file>', 'read image paths from a file, one per line (- for stdin)')
    .option(...flagArgs(DESCRIBE_OPTIONS.layer))
    .option(...flagArgs(DESCRIBE_OPTIONS.normalize))
    .option(...flagArgs(DESCRIBE_OPTIONS.batchSize))
    .option(
      '-o, --output <file>',
      'write to this file instead of stdout: .jsonl (JSON lines), .npy or .f32 (matrix + index)',
    )
    .option('--output-format <format>', `${OUTPUT_FORMATS.join(', ')} (default: from the extension)`)
    .option('--resume', 'continue an output a stopped run left: skip the images it holds, redo the last one')
    .option('--overwrite', 'replace an existing output file');
  addDescribeInputOptions(cmd);
  return cmd.action(async (args: string[], flags: DescribeFlags) => {
    const layer = resolveFlag(DESCRIBE_OPTIONS.layer, flags.layer);
    const batchSize = resolveFlag(DESCRIBE_OPTIONS.batchSize, flags.batch);
    const { image, faces, load } = describeInputs(flags); // validates the model flags before anything opens
    checkFit(faces.detector, flags.fit);
    if (flags.resume && flags.overwrite) throw usageError('--resume and --overwrite: choose one', '--resume');
    if ((flags.resume || flags.overwrite || flags.outputFormat) && !flags.output)
      throw usageError(
        `${flags.resume ? '--resume' : flags.overwrite ? '--overwrite' : '--output-format'} needs --output FILE`,
        '--output',
      );
    const format = flags.output ? outputFormatFor(flags.output, flags.outputFormat) : 'jsonl';
    const all = await collectImages(args, flags.list, ctx.stdin);
    // The output must be none of the files this run reads.
    const read = [
      flags.list === '-' ? undefined : flags.list,
      load.weights ?? envValue('weights'),
      faces.detectorModel ?? envValue('detectorModel'),
    ];
    const inputs = [...all, ...read.filter((p): p is string => !!p)];
    const resume = flags.resume ?? false;
    const overwrite = flags.overwrite ?? false;
    if (flags.output) await checkOutputTarget(flags.output, resume, overwrite, { format, inputs });
    // The detector first: it is small, and a missing one should fail before the large model loads.
    const detector =
      faces.detector === 'none'
        ? undefined
        : await openDetector({ model: faces.detectorModel, cacheDir: flags.cacheDir, threads: threadsOption(flags) });
    let model: VggFace;
    try {
      model = await VggFace.load(load);
    } catch (err) {
      await detector?.close();
      throw err;
    }
    let sink: DescriptorSink;
    try {
      sink = await openDescriptorSink({
        path: flags.output,
        format,
        resume,
        overwrite,
        inputs,
        settings: { dimension: model.dimension(layer), layer, normalized: !flags.raw, detector: faces.detector },
        stdout: ctx.stdout,
      });
    } catch (err) {
      await model.close();
      await detector?.close();
      throw err;
    }
    const images = sink.done.size > 0 ? all.filter((p) => !sink.done.has(p)) : all;
    if (sink.done.size > 0)
      ctx.stderr.write(
        `vggface: resuming ${flags.output}: ${all.length - images.length} ` +
          `images already done, ${images.length} to go\n`,
      );
    const bar = progressBar('Describing', images.length, { threshold: 16 });
    const options = { layer, normalize: !flags.raw, batchSize, ...image, onProgress: (d: number) => bar.update(d) };
    try {
      if (!detector) {
        for await (const r of model.describeEach(images, options)) {
          if (r.error) reportItemError(ctx, r.error);
          else await sink.write({ image: r.label, detected: false, rows: [{ descriptor: r.descriptor }] });
        }
      } else {
        for await (const r of model.describeFaces(images, { ...options, detector, ...faceSettings(faces) })) {
          if (r.error) {
            reportItemError(ctx, r.error);
            continue;
          }
          if (r.faces.length === 0) ctx.stderr.write(`vggface: ${r.label}: no face found\n`);
          await sink.write({ image: r.label, detected: true, rows: r.faces });
        }
      }
    } finally {
      bar.stop();
      await sink.close();
      await model.close();
      await detector?.close();
    }
  });
}
