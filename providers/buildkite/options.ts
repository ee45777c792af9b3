/**
 * A workflow's Buildkite options: `treadle: { buildkite: { pipeline, org, branch, message, env,
 * meta_data } }` (tack's `tack: { buildkite: { pipeline, org } }` reads the same). `org` falls
 * back to TREADLE_BUILDKITE_ORG; a missing `pipeline` fails the workflow with this error.
 */
import { PermanentError } from '../../src/errors.ts';

export interface BuildkiteOptions {
  org: string;
  pipeline: string;
  branch?: string;
  message?: string;
  env: Record<string, string>;
  metaData: Record<string, string>;
}

const SLUG = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

export function readOptions(
  options: Record<string, unknown>,
  defaultOrg: string | undefined,
): BuildkiteOptions {
  const pipeline = options.pipeline;
  if (pipeline === undefined)
    throw new PermanentError(
      'the workflow names no Buildkite pipeline: set treadle.buildkite.pipeline (a pipeline slug)',
    );
  if (typeof pipeline !== 'string' || !SLUG.test(pipeline))
    throw new PermanentError(
      `treadle.buildkite.pipeline must be a pipeline slug, got ${JSON.stringify(pipeline)}`,
    );
  const org = options.org ?? defaultOrg;
  if (org === undefined)
    throw new PermanentError('no Buildkite organisation: set treadle.buildkite.org or TREADLE_BUILDKITE_ORG');
  if (typeof org !== 'string' || !SLUG.test(org))
    throw new PermanentError(
      `treadle.buildkite.org must be an organisation slug, got ${JSON.stringify(org)}`,
    );
  const out: BuildkiteOptions = {
    org,
    pipeline,
    env: stringMap(options.env, 'env'),
    metaData: stringMap(options.meta_data, 'meta_data'),
  };
  for (const key of ['branch', 'message'] as const) {
    const v = options[key];
    if (v === undefined) continue;
    if (typeof v !== 'string' || v.length === 0)
      throw new PermanentError(`treadle.buildkite.${key} must be a non-empty string`);
    out[key] = v;
  }
  return out;
}

function stringMap(value: unknown, key: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value))
    throw new PermanentError(`treadle.buildkite.${key} must be a mapping of names to values`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'object' && v !== null)
      throw new PermanentError(`treadle.buildkite.${key}.${k} must be a string, number or boolean`);
    out[k] = String(v);
  }
  return out;
}
