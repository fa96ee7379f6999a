/**
 * Every VGGFACE_* environment variable, read in one place. A variable set to the empty string means unset
 * (`VGGFACE_WEIGHTS_URL= vggface describe ...` downloads from the default sources, not from the URL '').
 * Modules ask `envValue('weightsUrl')` instead of reading `process.env` themselves, so the rule holds for all of them.
 */
export const ENV_VARIABLES = {
  /** Weights to use when `--weights` is not given. */
  weights: 'VGGFACE_WEIGHTS',
  /** One download location that replaces the built-in weight sources. */
  weightsUrl: 'VGGFACE_WEIGHTS_URL',
  /** The cache folder. */
  cache: 'VGGFACE_CACHE',
  /** The YuNet ONNX file, when `--detector-model` is not given. */
  detectorModel: 'VGGFACE_DETECTOR_MODEL',
  /** Where to download YuNet from. */
  detectorUrl: 'VGGFACE_DETECTOR_URL',
  /** The gallery, when `--db` is not given. */
  gallery: 'VGGFACE_GALLERY',
  /** The job queue's PostgreSQL, when `--db` is not given to `queue` or `worker`. */
  queueDb: 'VGGFACE_QUEUE_DB',
  /** The server's bearer token. */
  token: 'VGGFACE_TOKEN',
  /** Print stack traces with errors. */
  debug: 'VGGFACE_DEBUG',
  /**
   * `npm run bench`: a PostgreSQL superuser URL for the "Gallery at scale" runs (default: a throwaway pg-test-server).
   */
  benchPg: 'VGGFACE_BENCH_PG',
} as const;

export type EnvVariable = keyof typeof ENV_VARIABLES;

/** The value of one VGGFACE_* variable, or undefined when it is unset or empty. */
export function envValue(name: EnvVariable, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[ENV_VARIABLES[name]];
  return value === undefined || value === '' ? undefined : value;
}

/** Every VGGFACE_* variable that is set to a non-empty value. */
export function readEnv(env: NodeJS.ProcessEnv = process.env): { readonly [K in EnvVariable]?: string } {
  const out: { [K in EnvVariable]?: string } = {};
  for (const name of Object.keys(ENV_VARIABLES) as EnvVariable[]) {
    const value = envValue(name, env);
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/**
 * A non-VGGFACE variable the project also reads (XDG_CACHE_HOME, XDG_DATA_HOME), with the same empty-means-unset rule.
 */
export function otherEnvValue(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}
