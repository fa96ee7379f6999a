/**
 * The OpenAPI 3.1 document, generated from the route table the server validates with (schemas.ts): each route's
 * body schemas become its request body by content type, its params schema its path parameters. The one
 * translation: the `upload` keyword (a multipart file) is written as OpenAPI writes files, `type: string,
 * format: binary`.
 */
import { VERSION } from '../version.js';
import type { AuthMode } from './options.js';
import type { JsonSchema, RouteSpec } from './schemas.js';

/** A deep copy with every `{upload: true}` schema written as a binary string. */
export function documentedSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(documentedSchema);
  if (schema === null || typeof schema !== 'object') return schema;
  const s = schema as JsonSchema;
  if (s.upload === true) {
    const { upload: _upload, ...rest } = s;
    return { type: 'string', format: 'binary', ...rest };
  }
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, documentedSchema(v)]));
}

/** `/v1/gallery/:id/faces` -> `/v1/gallery/{id}/faces` */
export function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z_]\w*)/g, '{$1}');
}

export function buildOpenApi(routes: readonly RouteSpec[], auth: AuthMode): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    if (r.hidden) continue;
    const needsToken = auth !== 'none' && (r.access === 'write' || (r.access === 'read' && auth === 'all'));
    const params = (r.params?.properties ?? {}) as Record<string, JsonSchema>;
    const operation: Record<string, unknown> = {
      operationId: r.operationId,
      summary: r.summary,
      ...(r.description ? { description: r.description } : {}),
      ...(needsToken ? { security: [{ bearer: [] }] } : {}),
      ...(r.params
        ? {
            parameters: Object.entries(params).map(([name, schema]) => ({
              name,
              in: 'path',
              required: true,
              ...(typeof schema.description === 'string' ? { description: schema.description } : {}),
              schema: documentedSchema(schema),
            })),
          }
        : {}),
      ...(r.body
        ? {
            requestBody: {
              required: true,
              content: {
                'application/json': { schema: documentedSchema(r.body.json) },
                'multipart/form-data': { schema: documentedSchema(r.body.multipart) },
              },
            },
          }
        : {}),
      responses: Object.fromEntries(
        Object.entries(r.responses).map(([status, spec]) => [
          status,
          {
            description: spec.description,
            ...(spec.schema || spec.contentType
              ? {
                  content: {
                    [spec.contentType ?? 'application/json']: spec.schema
                      ? { schema: documentedSchema(spec.schema) }
                      : {},
                  },
                }
              : {}),
            ...(status === '503'
              ? {
                  headers: {
                    'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer' } },
                  },
                }
              : {}),
          },
        ]),
      ),
    };
    (paths[openApiPath(r.url)] ??= {})[r.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'vggface',
      version: VERSION,
      description:
        'VGG-Face face descriptors over HTTP: describe faces, verify two ' +
        'photos, and a gallery of known people to search. ' +
        'Images are sent as JSON (base64) or as multipart/form-data ' +
        'uploads; errors are {"error": {"code", "message"}}.',
    },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'The server token ($VGGFACE_TOKEN or --token-file).' },
      },
    },
    paths,
  };
}
