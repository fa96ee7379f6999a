import { Command } from 'commander';
import { usageError } from '../../errors.js';
import { defaultGalleryPath, Gallery, openGalleryStore, removeIdentity } from '../../gallery/gallery.js';
import { DEFAULT_CANDIDATES_TEXT, MAX_CANDIDATES } from '../../gallery/approximate.js';
import { PRECISIONS, type Precision } from '../../gallery/scorer.js';
import type { GalleryStore } from '../../gallery/types.js';
import { defaultCacheDir } from '../../util/paths.js';
import { resolveThreshold } from '../../verify/thresholds.js';
import { modelIdentity } from '../../model/identity.js';
import * as check from '../../validate.js';
import { float32ToString, writeLine } from '../../output/json.js';
import { commandGroup } from '../command-group.js';
import { reportItemError, type CommandContext } from '../context.js';
import { addImageOptions, addModelOptions, flagArgs, imageOptions, resolveFlag, type ModelFlags } from '../options.js';
import { DESCRIBE_OPTIONS } from '../../options.js';
import { addFaceOptions, withPhotosAndModel, type FaceFlags } from '../face-options.js';
import { faceJson } from '../../output/json.js';
import { progressBar } from '../progress.js';
import { addThresholdOptions, thresholdFlags } from './verify.js';

interface DbFlags {
  db?: string;
}

function addDbOption(cmd: Command): Command {
  return cmd.option(
    '--db <location>',
    'gallery: a SQLite file, or postgres://user@host/db (password from $PGPASSWORD or ~/.pgpass; ' +
      'URL parameters schema, sslmode, statement_timeout, lock_timeout: see the README) (default: ' +
      '$VGGFACE_GALLERY, else ~/.local/share/vggface/gallery.db)',
  );
}

type PhotoFlags = ModelFlags & DbFlags & FaceFlags & { fit?: string; maxPixels?: string };

/**
 * The options of the commands that describe photos (add, search): the gallery, and the model, image and face
 * options, the same for both since a search must describe its photos as the gallery's were.
 */
function addPhotoOptions(cmd: Command): Command {
  addDbOption(cmd);
  addModelOptions(cmd);
  addImageOptions(cmd);
  return addFaceOptions(cmd, { detectorChoice: true });
}

const num = (x: number) => float32ToString(Math.fround(x));

/** Opens the gallery --db names (else the default one) without a model, runs `fn` on it, then closes it. */
async function withStore<T>(flags: DbFlags, fn: (store: GalleryStore) => Promise<T>): Promise<T> {
  const store = await openGalleryStore(flags.db ?? defaultGalleryPath());
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

function addSubcommand(ctx: CommandContext): Command {
  const cmd = new Command('add')
    .summary('describe images and store them under an identity')
    .description(
      "Stores each image's descriptor under --id, one transaction per batch. An image " +
        'already in the gallery (same content) is not stored again.\n' +
        'Prints one JSON line per image: {"image", "status": "added"|"duplicate", "identity"}.',
    )
    .requiredOption('--id <name>', 'the identity (person) the images show')
    .argument('<images...>', 'images of that person')
    .option(
      '--storage <p>',
      `descriptor storage of a new gallery: ${PRECISIONS.join(' or ')} (half the memory)`,
      'fp32',
    )
    .option(...flagArgs(DESCRIBE_OPTIONS.batchSize, 'images per inference call and per transaction'));
  addPhotoOptions(cmd);
  return cmd.action(async (images: string[], flags: PhotoFlags & { id: string; storage: string; batch?: string }) => {
    const precision = check.oneOf('--storage', flags.storage, PRECISIONS) as Precision;
    const batchSize = resolveFlag(DESCRIBE_OPTIONS.batchSize, flags.batch);
    const maxPixels = imageOptions(flags).maxPixels;
    await withPhotosAndModel(flags, async (photos, model) => {
      const gallery = await Gallery.open(model, { db: flags.db, precision, create: true });
      const bar = progressBar('Adding', images.length, { threshold: 16 });
      try {
        const results = await gallery.add(flags.id, images, {
          batchSize,
          maxPixels,
          ...photos.options,
          onProgress: (d) => bar.update(d),
        });
        for (const r of results) {
          if (r.status === 'failed') reportItemError(ctx, r.error!);
          else
            await writeLine(
              ctx.stdout,
              JSON.stringify({
                image: r.label,
                status: r.status,
                identity: r.status === 'added' ? flags.id : r.identity,
              }),
            );
        }
      } finally {
        bar.stop();
        await gallery.close();
      }
    });
  });
}

function searchSubcommand(ctx: CommandContext): Command {
  const cmd = new Command('search')
    .summary('find the best matching identities for images')
    .description(
      'For each image prints {"image", "identity", "distance", "threshold", "metric", ' +
        '"matches": [{"identity", "distance", "verified", "face"}]}:\n' +
        'the k best identities, each by the smallest distance over its faces; ' +
        '"identity" is the best one if its distance\n' +
        'is <= threshold, else "unknown".',
    )
    .argument('<images...>', 'images to identify')
    .option('-k, --top <k>', 'identities to return', '5')
    .option(
      '--approximate',
      'search the approximate index (a PCA projection; HNSW in PostgreSQL) and ' +
        're-rank its candidates exactly; built on first use',
    )
    .option(
      '--candidates <n>',
      `with --approximate: candidates to re-rank (1-${MAX_CANDIDATES}; default ${DEFAULT_CANDIDATES_TEXT})`,
    )
    .option(
      '--components <n>',
      'with --approximate, when the index is built: dimensions of the projection ' +
        '(1-2000; default 256, or the descriptor size if smaller)',
    );
  addThresholdOptions(cmd);
  addPhotoOptions(cmd);
  return cmd.action(
    async (
      images: string[],
      flags: PhotoFlags & {
        top: string;
        metric: string;
        threshold?: string;
        approximate?: boolean;
        candidates?: string;
        components?: string;
      },
    ) => {
      const k = check.integer('-k', flags.top, 1, 1000);
      const candidates =
        flags.candidates === undefined ? undefined : check.integer('--candidates', flags.candidates, 1, MAX_CANDIDATES);
      const components =
        flags.components === undefined ? undefined : check.integer('--components', flags.components, 1, 2000);
      const { metric, explicit } = thresholdFlags(flags);
      const maxPixels = imageOptions(flags).maxPixels;
      await withPhotosAndModel(flags, async (photos, model) => {
        const { threshold } = await resolveThreshold({
          metric,
          explicit,
          cacheDir: flags.cacheDir ?? defaultCacheDir(),
          identity: await modelIdentity(model),
        });
        const gallery = await Gallery.open(model, { db: flags.db });
        try {
          if (flags.approximate && (await gallery.store.meta()) && !(await gallery.store.hasAnnIndex())) {
            ctx.stderr.write(
              'vggface gallery search: building the approximate-search index ' +
                `of ${gallery.store.location} (once: adds keep it up to date from now on)\n`,
            );
            await gallery.store.ensureAnnIndex({ components });
          }
          for await (const r of model.describePhotos(images, { maxPixels, ...photos.options })) {
            if (r.error) {
              reportItemError(ctx, r.error);
              continue;
            }
            const res = await gallery.searchDescriptor(r.descriptor, {
              k,
              metric,
              threshold,
              approximate: flags.approximate,
              candidates,
            });
            const matches = res.matches.map(
              (m) =>
                `{"identity":${JSON.stringify(m.identity)},"distance":${num(m.distance)}` +
                `,"verified":${m.verified},"face":${JSON.stringify(m.face.source)}}`,
            );
            await writeLine(
              ctx.stdout,
              `{"image":${JSON.stringify(r.label)},"identity":${JSON.stringify(res.identity)},"distance":` +
                `${num(res.distance)},"threshold":${res.threshold},"metric":"${res.metric}","matches":[` +
                `${matches.join(',')}]${r.face ? `,"face":${faceJson(r.face)}` : ''}}`,
            );
          }
        } finally {
          await gallery.close();
        }
      });
    },
  );
}

function listSubcommand(ctx: CommandContext): Command {
  const cmd = new Command('list')
    .summary('list identities and their number of faces')
    .description('Prints one JSON line per identity: {"identity", "faces"}.');
  addDbOption(cmd);
  return cmd.action((flags: DbFlags) =>
    withStore(flags, async (store) => {
      for (const s of await store.list()) await writeLine(ctx.stdout, JSON.stringify(s));
    }),
  );
}

function removeSubcommand(ctx: CommandContext): Command {
  const cmd = new Command('remove')
    .summary('remove an identity and all its faces')
    .argument('<identity>', 'the identity to remove');
  addDbOption(cmd);
  return cmd.action((identity: string, flags: DbFlags) =>
    withStore(flags, async (store) => {
      const removed = await removeIdentity(store, identity);
      await writeLine(ctx.stdout, JSON.stringify({ identity, removed }));
    }),
  );
}

export function galleryCommand(ctx: CommandContext): Command {
  const cmd = commandGroup({
    name: 'gallery',
    summary: 'a gallery of known faces: add, search, list, remove',
    description:
      'Known faces by identity, in one SQLite file (default) or PostgreSQL + pgvector (--db postgres://...).',
    subcommands: [addSubcommand(ctx), searchSubcommand(ctx), listSubcommand(ctx), removeSubcommand(ctx)],
  });
  cmd.action(() => {
    throw usageError('gallery needs a subcommand: add, search, list or remove');
  });
  return cmd;
}
