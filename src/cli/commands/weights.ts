/**
 * `vggface weights fetch|list|verify`: where the weights come from, what the cache holds, and whether a copy is right.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import * as tar from 'tar';
import { VggFaceError } from '../../errors.js';
import { META } from '../../onnx/contract.js';
import { readOnnxInfo } from '../../onnx/inspect.js';
import { defaultCacheDir } from '../../util/paths.js';
import { checkWeights } from '../../weights/check-worker.js';
import { detectFormat, formatIds, readHead } from '../../weights/formats.js';
import {
  fetchWeights,
  formatBytes,
  hashFile,
  readRecords,
  resolveSource,
  WEIGHT_SOURCES,
  weightsDir,
  type WeightSource,
} from '../../weights/official.js';
import { identityLine } from '../../weights/identity.js';
import type { FormatId } from '../../weights/types.js';
import * as check from '../../validate.js';
import { commandGroup } from '../command-group.js';
import type { CommandContext } from '../context.js';
import { progressBar, type Progress } from '../progress.js';

const CACHE_OPTION = ['--cache-dir <dir>', 'the cache (default: $VGGFACE_CACHE or ~/.cache/vggface)'] as const;

function sourceSummary(s: WeightSource): string {
  const size =
    s.bytes !== undefined ? `${s.bytes.toLocaleString('en-US')} bytes` : `about ${formatBytes(s.approxBytes)}`;
  const sum = s.md5
    ? `md5 ${s.md5} (from ${s.checksumFrom})`
    : s.sha256
      ? `sha256 ${s.sha256} (from ${s.checksumFrom})`
      : 'no published checksum: size and content are checked';
  return `${s.format ?? 'any layout'}${s.archive ? ` in ${s.download}` : ''}, ${size}, ${sum}`;
}

function sourceJson(s: WeightSource): object {
  return {
    name: s.name,
    url: s.url,
    description: s.description,
    format: s.format ?? null,
    archive: s.archive ?? null,
    file: s.file,
    bytes: s.bytes ?? null,
    approxBytes: s.approxBytes,
    md5: s.md5 ?? null,
    sha256: s.sha256 ?? null,
    checksumFrom: s.checksumFrom ?? null,
    terms: s.terms,
  };
}

function fetchCommand(ctx: CommandContext): Command {
  return new Command('fetch')
    .summary('download the published weights into the cache, from the first source that gives a checked copy')
    .description(
      `Tries the sources in order (${WEIGHT_SOURCES.map((s) => s.name).join(', ')}; ` +
        '"vggface weights list" shows them) until one gives a file\n' +
        'whose size and checksum (where published) and content (layout, ' +
        'VGG-Face topology at the published widths) check out.\n' +
        'Which source was used and why earlier ones were skipped is said on ' +
        'stderr, with the terms of use of the source.\n' +
        'Free space is checked first (the download, the extracted model and ' +
        'the converted ONNX model: about 1.7 GB for the\n' +
        'Oxford tarball). An interrupted download is resumed by running the ' +
        'command again. $VGGFACE_WEIGHTS_URL, if set,\n' +
        'replaces the sources. Prints the path of the weights on stdout.',
    )
    .option(
      '--source <name|url>',
      `only this source: ${WEIGHT_SOURCES.map((s) => s.name).join(', ')}, or an http(s) URL`,
    )
    .option('--force', 'download again even when checked weights are already in the cache')
    .option(...CACHE_OPTION)
    .option('--json', 'print a JSON report')
    .action(async (flags: { source?: string; force?: boolean; cacheDir?: string; json?: boolean }) => {
      // usage errors before anything starts
      if (flags.source !== undefined) resolveSource(check.nonEmptyString('--source', flags.source));
      const cacheDir = flags.cacheDir ?? defaultCacheDir();
      let bar: Progress | undefined;
      let label = 'Downloading';
      const outcome = await (async () => {
        try {
          return await fetchWeights({
            cacheDir,
            source: flags.source,
            force: flags.force,
            log: (m) => {
              bar?.stop();
              bar = undefined;
              ctx.stderr.write(`vggface: ${m}\n`);
            },
            onSourceStart: (s) => {
              label = `Downloading from ${s.name}`;
            },
            onProgress: (p) => {
              bar ??= progressBar(label, p.total ?? 0, { bytes: true });
              bar.update(p.received, p.total);
            },
          });
        } finally {
          bar?.stop();
        }
      })();
      if (outcome.cached)
        ctx.stderr.write(`vggface: already in the cache (from ${outcome.source.name}); --force downloads again\n`);
      if (flags.json) {
        ctx.stdout.write(
          JSON.stringify({
            path: outcome.path,
            source: outcome.source.name,
            url: outcome.source.url,
            cached: outcome.cached,
            skipped: outcome.skipped,
            ...(outcome.check ? { format: outcome.check.format, identity: outcome.check.identity } : {}),
            ...(outcome.sha256 ? { downloadSha256: outcome.sha256, downloadMd5: outcome.md5 } : {}),
          }) + '\n',
        );
      } else ctx.stdout.write(`${outcome.path}\n`);
    });
}

interface CachedEntry {
  file: string;
  path: string;
  bytes: number;
  sha256: string;
  source: string | null;
  fetched: string | null;
  format: string | null;
  identity: string | null;
}

async function cachedEntries(cacheDir: string): Promise<CachedEntry[]> {
  const records = await readRecords(cacheDir);
  const files = [
    ...new Set(WEIGHT_SOURCES.map((s) => s.file)),
    ...records.map((r) => r.file).filter((f) => !WEIGHT_SOURCES.some((s) => s.file === f)),
  ];
  const out: CachedEntry[] = [];
  for (const file of files) {
    const path = join(weightsDir(cacheDir), file);
    let bytes: number;
    try {
      const st = await stat(path);
      if (!st.isFile()) continue;
      bytes = st.size;
    } catch {
      continue;
    }
    const { sha256 } = await hashFile(path);
    // A record describes the file only while it is still the file that was fetched.
    const r = records.find((x) => x.file === file && x.fileSha256 === sha256);
    out.push({
      file,
      path,
      bytes,
      sha256,
      source: r?.source ?? null,
      fetched: r?.fetched ?? null,
      format: r?.format ?? null,
      identity: r?.identity ?? null,
    });
  }
  return out;
}

function listCommand(ctx: CommandContext): Command {
  return new Command('list')
    .summary('the weight sources, in the order they are tried, and what the cache holds')
    .option(...CACHE_OPTION)
    .option('--json', 'print JSON')
    .action(async (flags: { cacheDir?: string; json?: boolean }) => {
      const cacheDir = flags.cacheDir ?? defaultCacheDir();
      const cached = await cachedEntries(cacheDir);
      if (flags.json) {
        ctx.stdout.write(
          JSON.stringify({ sources: WEIGHT_SOURCES.map(sourceJson), cache: weightsDir(cacheDir), cached }) + '\n',
        );
        return;
      }
      const width = Math.max(...WEIGHT_SOURCES.map((s) => s.name.length));
      const lines = ['sources, tried in this order:'];
      WEIGHT_SOURCES.forEach((s, i) => {
        lines.push(`  ${i + 1}. ${s.name.padEnd(width)}  ${s.url}`);
        lines.push(`     ${' '.repeat(width)}  ${sourceSummary(s)}`);
        lines.push(`     ${' '.repeat(width)}  terms: ${s.terms}`);
      });
      lines.push(`cache: ${weightsDir(cacheDir)}`);
      if (cached.length === 0)
        lines.push(
          '  (no weights: "vggface weights fetch" downloads them, or place one of the files above there by hand)',
        );
      for (const c of cached) {
        const from = c.source ? `from ${c.source}${c.fetched ? ` (${c.fetched.slice(0, 10)})` : ''}` : 'placed by hand';
        lines.push(
          `  ${c.file}  ${c.bytes.toLocaleString('en-US')} bytes  ` +
            `sha256 ${c.sha256}  ${from}${c.identity ? `  identity ${c.identity}` : ''}`,
        );
      }
      ctx.stdout.write(lines.join('\n') + '\n');
    });
}

/** The known sources whose published checksum or fetched copy this file is. */
async function checksumMatches(cacheDir: string, md5: string, sha256: string): Promise<string[]> {
  const out: string[] = [];
  for (const s of WEIGHT_SOURCES) {
    if (s.md5 === md5) out.push(`${s.name}'s published md5 (from ${s.checksumFrom})`);
    else if (s.sha256 === sha256) out.push(`${s.name}'s published sha256 (from ${s.checksumFrom})`);
  }
  for (const r of await readRecords(cacheDir)) {
    if (r.downloadSha256 === sha256 || r.fileSha256 === sha256)
      out.push(`the copy fetched from ${r.source} on ${r.fetched.slice(0, 10)}`);
  }
  return [...new Set(out)];
}

function verifyCommand(ctx: CommandContext): Command {
  return new Command('verify')
    .summary('check a weight file: layout, topology, checksum against the known sources, identity')
    .description(
      'Reads the file as vggface would (layout detected by content) and ' +
        'reports its layout, whether it has the VGG-Face\n' +
        'topology at the published widths, its md5 and sha256 and which ' +
        'published checksum they match, and the network\n' +
        'identity (sha256 of the canonical weights: the same for every layout ' +
        'of the same network). A tarball is checked\n' +
        'against the published checksums and searched for ' +
        'VGG_FACE.caffemodel. Exit code 1 when the file is not usable\n' +
        'weights or a tarball does not match its published checksum.',
    )
    .argument('<file>', 'a weight file in any supported layout, a converted .onnx model, or vgg_face_caffe.tar.gz')
    .option('--format <format>', `force the layout: ${formatIds().join(', ')}`)
    .option(...CACHE_OPTION)
    .option('--json', 'print JSON')
    .action(async (file: string, flags: { format?: string; cacheDir?: string; json?: boolean }) => {
      const cacheDir = flags.cacheDir ?? defaultCacheDir();
      const { head, size } = readHead(file);
      const { md5, sha256 } = await hashFile(file);
      const matches = await checksumMatches(cacheDir, md5, sha256);
      const checksum = { md5, sha256, matches };
      const out = (report: Record<string, unknown>, lines: string[]) => {
        if (flags.json) ctx.stdout.write(JSON.stringify({ file, bytes: size, ...report, checksum }) + '\n');
        else {
          const sum =
            matches.length > 0
              ? `matches ${matches.join('; ')}`
              : 'matches no published checksum (only the Oxford tarball has one)';
          ctx.stdout.write(
            [
              `file:      ${file} (${size.toLocaleString('en-US')} bytes)`,
              ...lines,
              `md5:       ${md5}`,
              `sha256:    ${sha256}`,
              `checksum:  ${sum}`,
            ].join('\n') + '\n',
          );
        }
      };

      if (flags.format === undefined && head[0] === 0x1f && head[1] === 0x8b) {
        const members: string[] = [];
        try {
          await tar.t({ file, onReadEntry: (e) => void members.push(e.path) });
        } catch (err) {
          throw new VggFaceError(
            'E_FORMAT',
            `${file}: a gzip file but not a readable tarball (${(err as Error).message})`,
            { input: file },
          );
        }
        const model = members.find((p) => p.split('/').pop() === 'VGG_FACE.caffemodel');
        const published = WEIGHT_SOURCES.filter((s) => s.archive && s.md5);
        const ok = published.some((s) => s.md5 === md5);
        out({ format: 'tar.gz', members, caffemodel: model ?? null, published: ok }, [
          `format:    gzipped tarball${model ? `, holds ${model}` : ', holds no VGG_FACE.caffemodel'}`,
          `verdict:   ${ok ? 'the published Oxford tarball' : 'not the published Oxford tarball'}` +
            `${model ? ` (extract ${model} and verify it for its identity)` : ''}`,
        ]);
        if (!ok) ctx.failures++;
        return;
      }

      const format =
        flags.format === undefined
          ? await detectFormat(file)
          : (check.oneOf('--format', flags.format, formatIds()) as FormatId);
      if (format === 'onnx') {
        const m = readOnnxInfo(file).metadata;
        const identity = m[META.identity] ?? null;
        out({ format, identity, sourceSha256: m[META.sha256] ?? null, sourceFormat: m[META.format] ?? null }, [
          (
            'format:    onnx (converted ' +
            `from ${m[META.format] ?? 'unknown'} ${m[META.sourceName] ?? ''}, ${m[META.precision] ?? 'fp32'})`
          ).replace(/ ,/, ','),
          identityLine(identity, 11),
        ]);
        return;
      }
      const c = await checkWeights(file, format);
      const t = c.topology;
      const known = WEIGHT_SOURCES.filter((s) => s.format === c.format).map((s) => `${s.name} (${s.file})`);
      out(
        {
          format: c.format,
          layout: c.layout,
          dtype: c.sourceDtype,
          inputChannelOrder: c.inputChannelOrder,
          topology: { conv: t.conv, fc6: t.fc6, fc7: t.fc7, fc8: t.fc8, parameters: t.parameters },
          fullSize: c.fullSize,
          identity: c.identity,
          publishedAs: known,
        },
        [
          `format:    ${c.format} (${c.layout}), ${c.sourceDtype}, ${c.inputChannelOrder}`,
          `topology:  VGG-Face, ${
            c.fullSize
              ? 'the published widths'
              : `a narrow copy (conv ${t.conv.join(',')}; fc6 ${t.fc6}, fc7 ${t.fc7}, fc8 ${t.fc8})`
          }, ${t.parameters.toLocaleString('en-US')} parameters`,
          `published: ${
            known.length > 0 ? `in this layout by ${known.join(', ')}` : 'not a layout any built-in source publishes'
          }`,
          identityLine(c.identity, 11),
        ],
      );
    });
}

export function weightsCommand(ctx: CommandContext): Command {
  return commandGroup({
    name: 'weights',
    summary: 'fetch, list and verify the VGG-Face weights',
    description:
      'Where the weights come from (several published copies, tried in order), what ' +
      'the cache holds, and whether a file is a right copy.',
    subcommands: [fetchCommand(ctx), listCommand(ctx), verifyCommand(ctx)],
  });
}
