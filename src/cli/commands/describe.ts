import { Command } from 'commander';
import { VggFace, LAYERS, type Layer } from '../../vggface.js';
import * as check from '../../validate.js';
import { addImageOptions, addModelOptions, imageOptions, modelOptions, type ModelFlags } from '../options.js';
import { progressBar } from '../progress.js';
import { vectorJson, writeLine } from '../format.js';
import { reportItemError, type CommandContext } from '../context.js';

interface DescribeFlags extends ModelFlags {
  layer: string;
  raw?: boolean;
  batch: string;
  fit?: string;
  maxPixels?: string;
}

export function describeCommand(ctx: CommandContext): Command {
  const cmd = new Command('describe')
    .summary('print the descriptor of each image, one JSON object per line')
    .description(
      'Computes the VGG-Face descriptor (fc7 after ReLU, L2-normalised) of each image and writes one JSON object per line to stdout:\n' +
        '  {"image": "<path as given>", "descriptor": [numbers]}\n' +
        'Images that cannot be read are reported on stderr; the others go on, and the exit code is 1.',
    )
    .argument('<images...>', 'image files (JPEG, PNG, WebP, TIFF, GIF, AVIF)')
    .option('--layer <layer>', `which layer: ${LAYERS.join(', ')}`, 'fc7')
    .option('--raw', 'do not L2-normalise the vector')
    .option('--batch <n>', 'images per inference call', '8');
  addModelOptions(cmd);
  addImageOptions(cmd);
  return cmd.action(async (images: string[], flags: DescribeFlags) => {
    const layer = check.oneOf('--layer', flags.layer, LAYERS) as Layer;
    const batchSize = check.integer('--batch', flags.batch, 1, 256);
    const image = imageOptions(flags);
    const load = modelOptions(flags);
    const model = await VggFace.load(load);
    const bar = progressBar('Describing', images.length, { threshold: 16 });
    try {
      for await (const r of model.describeEach(images, { layer, normalize: !flags.raw, batchSize, ...image, onProgress: (d) => bar.update(d) })) {
        if (r.error) reportItemError(ctx, r.error);
        else await writeLine(ctx.stdout, `{"image":${JSON.stringify(r.label)},"descriptor":${vectorJson(r.descriptor)}}`);
      }
    } finally {
      bar.stop();
      await model.close();
    }
  });
}
