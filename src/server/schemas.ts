/**
 * The API's routes and JSON schemas, defined once: fastify validates every request with these objects and the
 * OpenAPI document (openapi.ts) is generated from the same objects, so the two cannot disagree. Limits that are
 * server settings (images per request, the default metric) are written into the schemas when the server starts;
 * the face and describe options are made from their definitions (options.ts), as the library's and the CLI's.
 *
 * Images come as JSON (`images: [{data: <base64>, name}]`) or as multipart uploads (repeated `images` file
 * fields, options as text fields: fastify's ajv coerces their types by the same schema). An uploaded file is
 * marked `{upload: true}` here: a keyword the server registers with ajv (the value must be an upload), which the
 * OpenAPI document shows as `type: string, format: binary`.
 */
import { METRICS, type Metric } from '../distance/distance.js';
import { DESCRIBE_OPTIONS, defaultAndNote, FACE_OPTIONS, type OptionSpec } from '../options.js';

export type JsonSchema = Record<string, unknown>;

/**
 * Who may call a route: `open` always; `read` with the token when auth is `all`; `write` with the token unless auth is
 * `none`.
 */
export type Access = 'open' | 'read' | 'write';

export interface ResponseSpec {
  readonly description: string;
  readonly schema?: JsonSchema;
  /** Default application/json. */
  readonly contentType?: string;
}

export interface RouteSpec {
  readonly operationId: string;
  readonly method: 'GET' | 'POST' | 'DELETE';
  /** fastify's form: /v1/gallery/:id/faces */
  readonly url: string;
  readonly summary: string;
  readonly description?: string;
  readonly access: Access;
  readonly params?: JsonSchema;
  /** Request bodies by content type. */
  readonly body?: { readonly json: JsonSchema; readonly multipart: JsonSchema };
  readonly responses: Readonly<Record<number, ResponseSpec>>;
  /** Not in the OpenAPI document (the web page's files). */
  readonly hidden?: boolean;
}

export interface SchemaLimits {
  readonly maxImages: number;
  readonly metric: Metric;
}

const NO_CONTROL_CHARACTERS = '^[^\\u0000-\\u001f\\u007f]*$';

const name: JsonSchema = {
  type: 'string',
  minLength: 1,
  maxLength: 256,
  pattern: NO_CONTROL_CHARACTERS,
  description: 'What to call the image in results and messages (e.g. its file name).',
};

const imageJson: JsonSchema = {
  type: 'object',
  required: ['data'],
  additionalProperties: false,
  properties: {
    data: {
      type: 'string',
      contentEncoding: 'base64',
      description:
        'The encoded image (JPEG, PNG, WebP, TIFF, GIF or AVIF) in base64, ' +
        'standard or URL-safe; a data: URL prefix is accepted.',
    },
    name,
  },
};

const upload: JsonSchema = {
  upload: true,
  description: 'An image file (JPEG, PNG, WebP, TIFF, GIF or AVIF); its file name names it in results.',
};

/**
 * A request field from an option's definition (options.ts): its type, range or values, and its description with
 * the default. The `default` keyword is written only with `withDefault`: fastify's ajv fills defaults into the
 * body, and a detection option filled in with faces "none" would break the rule that refuses it there.
 */
function optionSchema(spec: OptionSpec, { prefix = '', withDefault = false } = {}): JsonSchema {
  const type: JsonSchema =
    spec.kind === 'oneOf'
      ? { type: 'string', enum: spec.values }
      : spec.kind === 'number' || spec.kind === 'integer'
        ? { type: spec.kind, minimum: spec.min, maximum: spec.max }
        : spec.kind === 'string'
          ? { type: 'string', minLength: 1 }
          : { type: 'boolean' };
  const text = prefix === '' ? spec.description[0].toUpperCase() + spec.description.slice(1) : spec.description;
  return {
    ...type,
    ...(withDefault && spec.default !== undefined ? { default: spec.default } : {}),
    description: `${prefix}${text}${defaultAndNote(spec)}.`,
  };
}

/** Options of every route that finds faces in photos. */
function faceOptions(modes: readonly string[], fallback: string): Record<string, JsonSchema> {
  return {
    faces: {
      type: 'string',
      enum: modes,
      default: fallback,
      description:
        (modes.includes('all') ? '`all`: every face of each photo, largest first; ' : '') +
        '`largest`: the largest face of each photo (a photo without a face is an ' +
        'error); `none`: each image is a face crop, described as given.',
    },
    fit: optionSchema(DESCRIBE_OPTIONS.fit, { prefix: 'With faces `none`: ' }),
    align: optionSchema(FACE_OPTIONS.align),
    margin: optionSchema(FACE_OPTIONS.margin),
    minScore: optionSchema(FACE_OPTIONS.minScore),
    minFaceSize: optionSchema(FACE_OPTIONS.minFaceSize),
  };
}

const DETECTION_OPTIONS = ['align', 'margin', 'minScore', 'minFaceSize'];

/**
 * A rule between options: when `condition` holds, `then` must. The message a request that breaks it gets is the
 * description, which is put on every subschema of `then` that can fail (validation errors point at those).
 */
function rule(description: string, condition: JsonSchema, then: JsonSchema): JsonSchema {
  const props = then.properties as Record<string, JsonSchema> | undefined;
  const described = props
    ? { ...then, properties: Object.fromEntries(Object.entries(props).map(([k, v]) => [k, { ...v, description }])) }
    : then;
  return { description, if: condition, then: { ...described, description } };
}

/** Rules between the face options. */
function faceRules(withMaxFaces: boolean): JsonSchema[] {
  const detection = withMaxFaces ? [...DETECTION_OPTIONS, 'maxFaces'] : DETECTION_OPTIONS;
  const rules: JsonSchema[] = [
    rule(
      'fit applies to face crops: it needs faces "none"',
      { required: ['fit'] },
      { required: ['faces'], properties: { faces: { const: 'none' } } },
    ),
    rule(
      `${detection.join(', ')} apply to detected faces: not with faces "none"`,
      { required: ['faces'], properties: { faces: { const: 'none' } } },
      { not: { anyOf: detection.map((p) => ({ required: [p] })) } },
    ),
  ];
  if (withMaxFaces)
    rules.push(
      rule('maxFaces applies to faces "all"', { required: ['maxFaces'] }, { properties: { faces: { const: 'all' } } }),
    );
  return rules;
}

function thresholdOptions(metric: Metric): Record<string, JsonSchema> {
  return {
    metric: {
      type: 'string',
      enum: METRICS,
      default: metric,
      description: `Distance: ${METRICS.join(', ')} (default ${metric}).`,
    },
    threshold: {
      type: 'number',
      minimum: 0,
      description:
        "Same person when distance <= threshold. Default: the server's --threshold for its metric, else the " +
        "model's calibrated threshold (or deepface's, for deepface-preprocessed models).",
    },
  };
}

/** The JSON and multipart forms of a body with images and options. */
function imagesBody(
  count: { min: number; max: number },
  options: Record<string, JsonSchema>,
  rules: JsonSchema[],
): { json: JsonSchema; multipart: JsonSchema } {
  const images = (items: JsonSchema, description: string): JsonSchema => ({
    type: 'array',
    minItems: count.min,
    maxItems: count.max,
    items,
    description,
  });
  const body = (items: JsonSchema, description: string): JsonSchema => ({
    type: 'object',
    required: ['images'],
    additionalProperties: false,
    properties: { images: images(items, description), ...options },
    ...(rules.length > 0 ? { allOf: rules } : {}),
  });
  const n = count.min === count.max ? `exactly ${count.min}` : `${count.min} to ${count.max}`;
  return {
    json: body(imageJson, `${n} images.`),
    multipart: body(upload, `${n} image files, each in a field named images.`),
  };
}

// Responses.
const point: JsonSchema = { type: 'array', items: { type: 'number' }, minItems: 2, maxItems: 2 };
const face: JsonSchema = {
  type: 'object',
  required: ['box', 'score', 'landmarks'],
  description:
    'A detected face, in pixels of the photo as displayed (EXIF ' +
    "orientation applied). Right and left are the subject's.",
  properties: {
    box: {
      type: 'object',
      required: ['x', 'y', 'width', 'height'],
      properties: {
        x: { type: 'number' },
        y: { type: 'number' },
        width: { type: 'number' },
        height: { type: 'number' },
      },
    },
    score: { type: 'number' },
    landmarks: {
      type: 'object',
      required: ['rightEye', 'leftEye', 'noseTip', 'mouthRight', 'mouthLeft'],
      properties: { rightEye: point, leftEye: point, noseTip: point, mouthRight: point, mouthLeft: point },
    },
  },
};
const photo = {
  name: { type: 'string' },
  width: { type: 'integer', description: 'Photo width as displayed (absent for crops).' },
  height: { type: 'integer' },
};
const descriptor: JsonSchema = {
  type: 'array',
  items: { type: 'number' },
  description: 'The descriptor (fc7, L2-normalised, unless layer/normalize say otherwise).',
};
const describedImage: JsonSchema = {
  type: 'object',
  required: ['faces'],
  properties: {
    ...photo,
    faces: {
      type: 'array',
      description: 'Largest first; one entry without box for a crop.',
      items: { type: 'object', required: ['descriptor'], properties: { ...(face.properties as object), descriptor } },
    },
  },
};
const usedFace: JsonSchema = { type: 'object', properties: { ...photo, face } };
const match: JsonSchema = {
  type: 'object',
  required: ['identity', 'distance', 'verified', 'source'],
  properties: {
    identity: { type: 'string' },
    distance: { type: 'number', description: 'The smallest distance over the identity’s faces.' },
    verified: { type: 'boolean', description: 'distance <= threshold' },
    source: { type: 'string', description: 'The name the best-matching face was added under.' },
  },
};
export const errorSchema: JsonSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
  },
};

const err = (description: string): ResponseSpec => ({ description, schema: errorSchema });
const IMAGE_ERRORS: Record<number, ResponseSpec> = {
  400: err(
    'A malformed request: invalid JSON, a field of the wrong type or out of range, an unknown field, invalid base64.',
  ),
  413: err('The body, an image (pixels) or the number of images is over the server’s limits.'),
  415: err('Not JSON or multipart/form-data, or an image format that is not supported.'),
  422: err('An image that cannot be decoded, or (faces largest) with no face.'),
  503: err('The server is busy (queue full) or the request ran past its time limit: retry after Retry-After seconds.'),
  500: err('An internal error (details in the server log only).'),
};
const AUTH_ERROR: Record<number, ResponseSpec> = { 401: err('Missing or wrong bearer token.') };
/** Every route checks the Host header first. */
const HOST_ERROR: Record<number, ResponseSpec> = {
  421: err(
    'The Host header is not a name of this server (localhost, its listen ' +
      'address, --allowed-host): refused against DNS rebinding.',
  ),
};
const LONG_ID_ERROR: Record<number, ResponseSpec> = { 414: err('The identity in the URL is over 256 characters.') };

export const identityParams: JsonSchema = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: {
    id: {
      type: 'string',
      minLength: 1,
      maxLength: 256,
      pattern: '^(?!\\s*$)[^\\u0000-\\u001f\\u007f]+$',
      not: { const: 'unknown' },
      description:
        'The identity (person): 1 to 256 printable characters, not only spaces, not ' +
        '"unknown" (what search answers when nothing matches).',
    },
  },
};

export const healthSchema: JsonSchema = {
  type: 'object',
  required: ['status', 'workers', 'queue', 'inflightImages', 'gallery'],
  properties: {
    status: { type: 'string', enum: ['ok', 'shutting_down', 'gallery_unavailable'] },
    workers: { type: 'object', properties: { ready: { type: 'integer' }, total: { type: 'integer' } } },
    queue: { type: 'object', properties: { waiting: { type: 'integer' }, capacity: { type: 'integer' } } },
    inflightImages: { type: 'integer' },
    gallery: {
      type: 'object',
      description:
        'The gallery store; `unavailable` while its PostgreSQL server cannot ' +
        'be reached (the server reconnects by itself).',
      properties: {
        backend: { type: 'string', enum: ['sqlite', 'postgres'] },
        state: { type: 'string', enum: ['ok', 'unavailable'] },
      },
    },
  },
};

/** Every route of the server, with its schemas. */
export function apiRoutes(limits: SchemaLimits): RouteSpec[] {
  return routeTable(limits).map((r) => ({
    ...r,
    responses: { ...r.responses, ...HOST_ERROR, ...(r.params === identityParams ? LONG_ID_ERROR : {}) },
  }));
}

function routeTable(limits: SchemaLimits): RouteSpec[] {
  const many = { min: 1, max: limits.maxImages };
  const crops = faceOptions(['largest', 'none'], 'largest');
  return [
    {
      operationId: 'describe',
      method: 'POST',
      url: '/v1/describe',
      summary: 'Describe every face in photos',
      description:
        'Finds the faces of each photo (or takes each image as a face crop with faces ' +
        '"none") and returns their descriptors, boxes, landmarks and scores.',
      access: 'read',
      body: imagesBody(
        many,
        {
          ...faceOptions(['all', 'largest', 'none'], 'all'),
          // The library's range (it was 1000 here): maxFaces only cuts the list of faces found, whose length
          // minScore and the image limits bound, so a lower maximum would refuse requests that cost no more than
          // leaving maxFaces out (all faces).
          maxFaces: optionSchema(FACE_OPTIONS.maxFaces, { prefix: 'With faces `all`: ' }),
          layer: optionSchema(DESCRIBE_OPTIONS.layer, { withDefault: true }),
          normalize: optionSchema(DESCRIBE_OPTIONS.normalize, { withDefault: true }),
        },
        faceRules(true),
      ),
      responses: {
        200: {
          description: 'One entry per image, in order.',
          schema: {
            type: 'object',
            required: ['images'],
            properties: { images: { type: 'array', items: describedImage } },
          },
        },
        ...IMAGE_ERRORS,
        ...AUTH_ERROR,
      },
    },
    {
      operationId: 'verify',
      method: 'POST',
      url: '/v1/verify',
      summary: 'Same person? Compare the largest faces of two photos',
      access: 'read',
      body: imagesBody({ min: 2, max: 2 }, { ...crops, ...thresholdOptions(limits.metric) }, faceRules(false)),
      responses: {
        200: {
          description: 'The verdict, and the face used in each photo.',
          schema: {
            type: 'object',
            required: ['verified', 'distance', 'threshold', 'metric', 'images'],
            properties: {
              verified: { type: 'boolean', description: 'distance <= threshold' },
              distance: { type: 'number' },
              threshold: { type: 'number' },
              metric: { type: 'string', enum: METRICS },
              images: { type: 'array', items: usedFace, minItems: 2, maxItems: 2 },
            },
          },
        },
        ...IMAGE_ERRORS,
        ...AUTH_ERROR,
      },
    },
    {
      operationId: 'addFaces',
      method: 'POST',
      url: '/v1/gallery/:id/faces',
      summary: 'Add photos of a person to the gallery',
      description:
        'Describes the largest face of each photo and stores it under the identity, all in one transaction (an image ' +
        'that fails stores nothing). An image already in the gallery (same bytes) is not stored again.',
      access: 'write',
      params: identityParams,
      body: imagesBody(many, crops, faceRules(false)),
      responses: {
        200: {
          description: 'One entry per image, in order.',
          schema: {
            type: 'object',
            required: ['identity', 'images'],
            properties: {
              identity: { type: 'string' },
              images: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['status', 'identity'],
                  properties: {
                    ...photo,
                    face,
                    status: { type: 'string', enum: ['added', 'duplicate'] },
                    identity: {
                      type: 'string',
                      description: 'The identity the image is stored under (for a duplicate, possibly another).',
                    },
                  },
                },
              },
            },
          },
        },
        ...IMAGE_ERRORS,
        ...AUTH_ERROR,
      },
    },
    {
      operationId: 'removeIdentity',
      method: 'DELETE',
      url: '/v1/gallery/:id',
      summary: 'Remove a person and all their faces from the gallery',
      access: 'write',
      params: identityParams,
      responses: {
        200: {
          description: 'Removed.',
          schema: {
            type: 'object',
            required: ['identity', 'removed'],
            properties: { identity: { type: 'string' }, removed: { type: 'integer' } },
          },
        },
        400: IMAGE_ERRORS[400],
        404: err('The gallery has no such identity.'),
        500: IMAGE_ERRORS[500],
        ...AUTH_ERROR,
      },
    },
    {
      operationId: 'listIdentities',
      method: 'GET',
      url: '/v1/gallery',
      summary: 'The identities in the gallery and their number of faces',
      access: 'read',
      responses: {
        200: {
          description: 'Sorted by identity.',
          schema: {
            type: 'object',
            required: ['identities'],
            properties: {
              identities: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['identity', 'faces'],
                  properties: { identity: { type: 'string' }, faces: { type: 'integer' } },
                },
              },
            },
          },
        },
        500: IMAGE_ERRORS[500],
        ...AUTH_ERROR,
      },
    },
    {
      operationId: 'search',
      method: 'POST',
      url: '/v1/search',
      summary: 'Who is it? The best matching identities for the largest face of each photo',
      access: 'read',
      body: imagesBody(
        many,
        {
          ...crops,
          k: { type: 'integer', minimum: 1, maximum: 100, default: 5, description: 'Identities to return.' },
          ...thresholdOptions(limits.metric),
        },
        faceRules(false),
      ),
      responses: {
        200: {
          description:
            'One entry per image, in order: "identity" is the best match if ' +
            'its distance is <= threshold, else "unknown".',
          schema: {
            type: 'object',
            required: ['results'],
            properties: {
              results: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['identity', 'distance', 'threshold', 'metric', 'matches'],
                  properties: {
                    ...photo,
                    face,
                    identity: { type: 'string' },
                    distance: { type: 'number' },
                    threshold: { type: 'number' },
                    metric: { type: 'string', enum: METRICS },
                    matches: { type: 'array', items: match },
                  },
                },
              },
            },
          },
        },
        ...IMAGE_ERRORS,
        404: err('The gallery has no faces yet.'),
        ...AUTH_ERROR,
      },
    },
    {
      operationId: 'health',
      method: 'GET',
      url: '/healthz',
      summary: 'Liveness and load; answers at once, even while the workers are busy',
      access: 'open',
      responses: {
        200: { description: 'Serving.', schema: healthSchema },
        503: { description: 'Shutting down, or the gallery database is unavailable.', schema: healthSchema },
      },
    },
    {
      operationId: 'metrics',
      method: 'GET',
      url: '/metrics',
      summary: 'Prometheus metrics (text format 0.0.4)',
      access: 'read',
      responses: {
        200: {
          description:
            'Request counts and latencies by route and status, queue depth, inference batch sizes, images described.',
          contentType: 'text/plain',
        },
        ...AUTH_ERROR,
      },
    },
    {
      operationId: 'openapi',
      method: 'GET',
      url: '/openapi.json',
      summary: 'This document',
      access: 'read',
      responses: { 200: { description: 'OpenAPI 3.1.', schema: { type: 'object' } }, ...AUTH_ERROR },
    },
  ];
}
