/**
 * The HTTP API on fastify: routes from the route table (schemas.ts) with their handlers, authentication,
 * multipart bodies, errors as `{error: {code, message}}`, metrics, the OpenAPI document; the pages, the browser
 * library and the models are static.ts's.
 * Handlers only move data: images go to the inference pool, descriptors to the gallery worker.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import { faceJson } from '../output/json.js';
import { VggFaceError } from '../errors.js';
import { checkIdentity } from '../gallery/gallery.js';
import { distance, type Metric } from '../distance/distance.js';
import type { DetectedFace } from '../face/types.js';
import type { Fit } from '../image/decode.js';
import type { AlignMode } from '../face/align.js';
import type { Layer } from '../vggface.js';
import { ApiError, clientErrorResponse, internalError } from './api-error.js';
import { needsToken, tokenMatches } from './auth.js';
import type { GalleryClient } from './gallery-client.js';
import type { InferencePool } from './inference-pool.js';
import type { ServerMetrics } from './metrics.js';
import { buildOpenApi } from './openapi.js';
import { SERVE_DEFAULTS, type ServeOptions } from './options.js';
import type { FaceMode, ImageResult, JobSpec, JsonResult, VectorResult } from './protocol.js';
import { apiRoutes, errorSchema, type Access, type RouteSpec } from './schemas.js';
import { registerStaticRoutes } from './static.js';
import { busboyLimits, jobImages, readMultipartBody, type Upload, uploadKeyword } from './uploads.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route (see auth.ts). */
    access?: Access;
  }
}

export interface ApiContext {
  readonly options: ServeOptions;
  readonly pool: InferencePool;
  readonly gallery: GalleryClient;
  /** The threshold of each metric when a request gives none (undefined: the request must give one). */
  readonly thresholds: Partial<Record<Metric, number>>;
  readonly metrics: ServerMetrics;
  /** The Host header check (hosts.ts): the error to answer, or undefined for a name of this server. */
  readonly hostCheck: (host: string | undefined) => ApiError | undefined;
  readonly shuttingDown: () => boolean;
  /** `--models DIR`, resolved (static.ts): the converted models served under /models/. */
  readonly modelsDir?: string;
}

type BodyImage = Upload | { data: string; name?: string };

interface PhotoOptions {
  images: BodyImage[];
  faces: FaceMode;
  fit?: Fit;
  align?: AlignMode;
  margin?: number;
  minScore?: number;
  minFaceSize?: number;
  maxFaces?: number;
}
interface DescribeBody extends PhotoOptions {
  layer: Layer;
  normalize: boolean;
}
interface VerifyBody extends PhotoOptions {
  metric: Metric;
  threshold?: number;
}
interface SearchBody extends VerifyBody {
  k: number;
}

const spec = (b: PhotoOptions, output: JobSpec['output'], extra: Partial<JobSpec> = {}): JobSpec => ({
  faces: b.faces,
  fit: b.fit,
  detection: {
    align: b.align,
    margin: b.margin,
    minScore: b.minScore,
    minFaceSize: b.minFaceSize,
    maxFaces: b.maxFaces,
  },
  layer: 'fc7',
  normalize: true,
  output,
  hash: false,
  ...extra,
});

const nameOf = (img: BodyImage): string | undefined => img.name;

/** The face each image was described by, for answers. */
function usedFace(
  img: BodyImage,
  r: VectorResult,
): { name?: string; width?: number; height?: number; face?: DetectedFace } {
  // Rounded as describe and the CLI write faces (pixels to 2 decimals, score to 4).
  return {
    name: nameOf(img),
    width: r.width,
    height: r.height,
    face: r.face && (JSON.parse(faceJson(r.face)) as DetectedFace),
  };
}

/** 2097152 -> "2 MiB". */
function formatBytes(n: number): string {
  for (const [unit, size] of [
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ] as const)
    if (n >= size && n % (size / 8) === 0) return `${n / size} ${unit}`;
  return `${n} bytes`;
}

/** 256 characters of an identity, each up to 9 characters percent-encoded (3 UTF-8 bytes; 4 for 2 UTF-16 units). */
const MAX_IDENTITY_URL_LENGTH = 256 * 9;

/** The router's errors, before any route: a path segment too long for an identity, a URL that is not valid. */
function frameworkApiError(error: FastifyError): ApiError {
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH')
    return new ApiError(414, 'uri_too_long', 'the URL is too long: an identity has at most 256 characters');
  if (error.code === 'FST_ERR_BAD_URL')
    return new ApiError(400, 'invalid_url', 'the URL is not valid (a malformed percent-encoding)');
  return internalError();
}

/** Maps anything thrown while answering to the API's error. */
export function apiErrorOf(error: unknown, maxImages: number): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof VggFaceError)
    return error.code === 'E_USAGE' ? new ApiError(400, 'invalid_request', error.message) : internalError();
  const e = error as FastifyError & {
    validation?: { keyword: string; instancePath: string; params: Record<string, unknown> }[];
  };
  if (e?.validation) {
    const v = e.validation[0];
    if (v?.keyword === 'maxItems' && v.instancePath === '/images' && v.params.limit === maxImages) {
      return new ApiError(413, 'too_many_images', `too many images: at most ${maxImages} per request`);
    }
    return new ApiError(400, 'invalid_request', e.message);
  }
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
      return new ApiError(413, 'body_too_large', 'the request body is over the server’s size limit');
    case 'FST_FILES_LIMIT':
      return new ApiError(413, 'too_many_images', `too many images: at most ${maxImages} per request`);
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new ApiError(413, 'too_many_fields', 'too many form fields');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'unsupported_media_type', 'send application/json or multipart/form-data');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError(400, 'invalid_json', 'the JSON body is empty');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ApiError(400, 'invalid_json', 'the body is not valid JSON');
  }
  if (e instanceof SyntaxError && (e as FastifyError).statusCode === 400)
    return new ApiError(400, 'invalid_json', 'the body is not valid JSON');
  const status = e?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new ApiError(
      status,
      'invalid_request',
      typeof e.code === 'string' && e.code.startsWith('FST_') ? e.message : 'invalid request',
    );
  }
  return internalError();
}

/** Validation messages that say which field and what is wrong; a broken rule between fields by its description. */
function formatSchemaErrors(errors: readonly Record<string, unknown>[], dataVar: string): Error {
  const e = errors[0] ?? {};
  const description = (e.parentSchema as { description?: unknown } | undefined)?.description;
  if (String(e.schemaPath ?? '').includes('/then/') && typeof description === 'string')
    return new Error(`${dataVar}: ${description}`);
  const path = `${dataVar}${String(e.instancePath ?? '')}`;
  const params = (e.params ?? {}) as Record<string, unknown>;
  switch (e.keyword) {
    case 'enum':
      return new Error(
        `${path} must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`,
      );
    case 'additionalProperties':
      return new Error(`${path} has an unknown field ${JSON.stringify(params.additionalProperty)}`);
    case 'upload':
      return new Error(`${path} must be an uploaded file`);
    case 'not':
    case 'pattern':
      return new Error(`${path} is not allowed${typeof description === 'string' ? `: ${description}` : ''}`);
    default:
      return new Error(`${path} ${String(e.message ?? 'is invalid')}`);
  }
}

export async function buildApp(ctx: ApiContext): Promise<FastifyInstance> {
  const { options, pool, gallery, metrics } = ctx;
  const routes = apiRoutes({ maxImages: options.maxImages, metric: options.metric });
  const openApi = JSON.stringify(buildOpenApi(routes, options.auth));

  const jsonLimit = Math.min(options.maxJsonBytes ?? SERVE_DEFAULTS.maxJsonBytes, options.maxBodyBytes);
  const app = Fastify({
    logger: options.logLevel === 'silent' ? false : { level: options.logLevel, stream: process.stderr },
    bodyLimit: options.maxBodyBytes,
    // Receiving the request is bounded separately (Node checks it coarsely anyway), never below 10 s.
    requestTimeout: Math.max(options.timeoutMs, 10_000),
    ajv: { customOptions: { removeAdditional: false, verbose: true, keywords: [uploadKeyword] } },
    schemaErrorFormatter: (errors, dataVar) =>
      formatSchemaErrors(errors as unknown as Record<string, unknown>[], dataVar),
    // An identity may have 256 characters (as the CLI takes): percent-encoded UTF-8, up to 9 characters each.
    routerOptions: { maxParamLength: MAX_IDENTITY_URL_LENGTH },
    // Errors found before a route is chosen get the same {error: {code, message}} as every other answer:
    // the router's (a param too long, a malformed URL) and the HTTP parser's (headers too large, not HTTP).
    frameworkErrors: (error, _request, reply) => {
      const api = frameworkApiError(error);
      void (reply as FastifyReply).code(api.status).send(api.body());
    },
    clientErrorHandler: (error, socket) => {
      if ((error as NodeJS.ErrnoException).code === 'ECONNRESET' || socket.destroyed) return;
      if (socket.writable) socket.write(clientErrorResponse(error));
      socket.destroy(error);
    },
  });
  // JSON and multipart only (fastify would also parse text/plain, which no route takes: 415). JSON bodies have a
  // lower limit of their own: they are parsed on the event loop (see SERVE_DEFAULTS.maxJsonBytes).
  app.removeContentTypeParser(['text/plain', 'application/json']);
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string', bodyLimit: jsonLimit },
    app.getDefaultJsonParser('error', 'error'),
  );
  await app.register(multipart, { limits: busboyLimits(options) });

  const limits = { maxBodyBytes: options.maxBodyBytes, maxImages: options.maxImages };
  const isJson = (request: FastifyRequest) => /^application\/json\b/i.test(request.headers['content-type'] ?? '');
  /** 413 for a body over its limit: JSON's says what to send instead. */
  const tooLarge = (request: FastifyRequest) =>
    isJson(request)
      ? new ApiError(
          413,
          'body_too_large',
          `a JSON body may have at most ${formatBytes(jsonLimit)} (its base64 is parsed on the event ` +
            'loop): send photos as multipart/form-data, in fields named images',
        )
      : new ApiError(413, 'body_too_large', 'the request body is over the server’s size limit');
  app.addHook('onRequest', async (request) => {
    const misdirected = ctx.hostCheck(request.headers.host);
    if (misdirected) throw misdirected;
    const access = request.routeOptions.config.access ?? 'open';
    if (needsToken(options.auth, access) && !tokenMatches(request.headers.authorization, options.token!)) {
      throw new ApiError(401, 'unauthorized', 'this route needs the server token: Authorization: Bearer <token>');
    }
    // Refuse an announced oversized body before reading it (multipart is not bounded by bodyLimit).
    const length = Number(request.headers['content-length']);
    if (Number.isFinite(length) && length > (isJson(request) ? jsonLimit : options.maxBodyBytes))
      throw tooLarge(request);
  });
  app.addHook('preValidation', async (request) => {
    if (request.isMultipart()) request.body = await readMultipartBody(request, limits);
  });
  // While shutting down, answers close their connection: a keep-alive connection left open would hold the
  // server's close until its keep-alive timeout.
  app.addHook('onSend', async (_request, reply, payload) => {
    if (ctx.shuttingDown()) void reply.header('Connection', 'close');
    return payload;
  });
  app.addHook('onResponse', async (request, reply) => {
    metrics.request(
      request.routeOptions.url ?? 'unmatched',
      request.method,
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
  });
  app.setErrorHandler((error, request, reply) => {
    const api =
      (error as FastifyError).code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? tooLarge(request)
        : apiErrorOf(error, options.maxImages);
    if (api.code === 'internal') request.log.error({ err: error }, 'internal error');
    if (api.retryAfter !== undefined) void reply.header('Retry-After', String(api.retryAfter));
    if (api.status === 401) void reply.header('WWW-Authenticate', 'Bearer realm="vggface"');
    void reply.code(api.status).send(api.body());
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0].slice(0, 200);
    void reply.code(404).send(new ApiError(404, 'not_found', `no route ${request.method} ${path}`).body());
  });

  /** Runs a request's images in the workers, until the request's deadline or the client leaves. */
  async function runImages(reply: FastifyReply, job: JobSpec, images: readonly BodyImage[]): Promise<ImageResult[]> {
    const controller = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) controller.abort();
    };
    reply.raw.once('close', onClose);
    try {
      const deadline = Date.now() - reply.elapsedTime + options.timeoutMs;
      const { images: jobs, transfer } = jobImages(images);
      return await pool.submit(job, jobs, { deadline, signal: controller.signal, transfer });
    } finally {
      reply.raw.off('close', onClose);
    }
  }

  const thresholdFor = (metric: Metric, given: number | undefined): number => {
    const t = given ?? ctx.thresholds[metric];
    if (t === undefined) {
      throw new ApiError(
        422,
        'no_threshold',
        `no ${metric} threshold: this model has none calibrated; send "threshold" (or ` +
          `start the server with --metric ${metric} --threshold T)`,
      );
    }
    return t;
  };

  const handlers: Record<string, (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>> = {
    async describe(request, reply) {
      const b = request.body as DescribeBody;
      const results = (await runImages(
        reply,
        spec(b, 'json', { layer: b.layer, normalize: b.normalize }),
        b.images,
      )) as JsonResult[];
      void reply.type('application/json; charset=utf-8');
      return `{"images":[${results.map((r) => r.json).join(',')}]}`;
    },
    async verify(request, reply) {
      const b = request.body as VerifyBody;
      const threshold = thresholdFor(b.metric, b.threshold);
      const [x, y] = (await runImages(reply, spec(b, 'vectors'), b.images)) as VectorResult[];
      const d = distance(x.descriptor, y.descriptor, b.metric);
      return {
        verified: d <= threshold,
        distance: d,
        threshold,
        metric: b.metric,
        images: [usedFace(b.images[0], x), usedFace(b.images[1], y)],
      };
    },
    async addFaces(request, reply) {
      const identity = checkIdentity((request.params as { id: string }).id);
      const b = request.body as PhotoOptions;
      const results = (await runImages(reply, spec(b, 'vectors', { hash: true }), b.images)) as VectorResult[];
      const outcomes = await gallery.add(
        identity,
        results.map((r, i) => ({
          name: nameOf(b.images[i]) ?? `sha256:${r.sha256!.slice(0, 16)}`,
          sha256: r.sha256!,
          descriptor: r.descriptor,
        })),
      );
      return {
        identity,
        images: outcomes.map((o, i) => ({
          ...usedFace(b.images[i], results[i]),
          status: o.status,
          identity: o.identity,
        })),
      };
    },
    async removeIdentity(request) {
      const identity = checkIdentity((request.params as { id: string }).id);
      return { identity, removed: await gallery.remove(identity) };
    },
    async listIdentities() {
      return { identities: await gallery.list() };
    },
    async search(request, reply) {
      const b = request.body as SearchBody;
      const threshold = thresholdFor(b.metric, b.threshold);
      const results = (await runImages(reply, spec(b, 'vectors'), b.images)) as VectorResult[];
      const out = [];
      for (const [i, r] of results.entries()) {
        const found = await gallery.search(r.descriptor, { k: b.k, metric: b.metric, threshold });
        out.push({ ...usedFace(b.images[i], r), ...found, threshold, metric: b.metric });
      }
      return { results: out };
    },
    async health(_request, reply) {
      const closing = ctx.shuttingDown();
      // Not ready while the gallery's PostgreSQL server cannot be reached (it reconnects by itself).
      const galleryDown = gallery.health.state !== 'ok';
      void reply.code(closing || galleryDown ? 503 : 200);
      return {
        status: closing ? 'shutting_down' : galleryDown ? 'gallery_unavailable' : 'ok',
        workers: { ready: pool.readyWorkers, total: pool.totalWorkers },
        queue: { waiting: pool.queueDepth, capacity: options.queueSize },
        inflightImages: pool.inflightImages,
        gallery: gallery.health,
      };
    },
    async metrics(_request, reply) {
      void reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    },
    async openapi(_request, reply) {
      void reply.type('application/json; charset=utf-8');
      return openApi;
    },
  };

  for (const r of routes) registerRoute(app, r, handlers[r.operationId]);
  registerStaticRoutes(app, { modelsDir: ctx.modelsDir, detectorModel: options.detectorModel });
  return app;
}

function registerRoute(
  app: FastifyInstance,
  r: RouteSpec,
  handler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>,
): void {
  const response: Record<number, unknown> = {};
  for (const [status, res] of Object.entries(r.responses))
    if (res.schema && (res.contentType ?? 'application/json') === 'application/json')
      response[Number(status)] = res.schema;
  for (const status of [400, 401, 404, 413, 415, 421, 422, 500, 503]) response[status] ??= errorSchema;
  app.route({
    method: r.method,
    url: r.url,
    config: { access: r.access },
    schema: {
      ...(r.params ? { params: r.params } : {}),
      ...(r.body
        ? {
            body: {
              content: {
                'application/json': { schema: r.body.json },
                'multipart/form-data': { schema: r.body.multipart },
              },
            },
          }
        : {}),
      response,
    },
    handler,
  });
}
