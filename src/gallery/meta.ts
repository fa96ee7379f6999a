/**
 * The gallery's meta table, kept alike by both stores (SQLite and PostgreSQL): key/value text rows saying that it
 * is a vggface gallery, its schema version, and which model and storage its descriptors have.
 */
import type { GalleryMeta } from './types.js';

/** The `application` row of every gallery: a table of that name that lacks it belongs to something else. */
export const APPLICATION = 'vggface-gallery';

/** The rows of a new gallery's meta table, in the order they are written. */
export function metaRows(meta: GalleryMeta, schemaVersion: number): [key: string, value: string][] {
  return [
    ['application', APPLICATION],
    ['schema_version', String(schemaVersion)],
    ['model_key', meta.modelKey],
    ['model_name', meta.modelName],
    ['dimension', String(meta.dimension)],
    ['precision', meta.precision],
  ];
}

/** The gallery's model and storage from its meta rows (key -> value). */
export function metaFromRows(rows: Readonly<Record<string, string>>): GalleryMeta {
  return {
    modelKey: rows.model_key,
    modelName: rows.model_name,
    dimension: Number(rows.dimension),
    precision: rows.precision === 'fp16' ? 'fp16' : 'fp32',
  };
}
