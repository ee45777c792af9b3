import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../src/errors.ts';
import { readOptions } from './options.ts';

describe('a workflow’s Buildkite options', () => {
  it('reads a pipeline, the default org, env and meta_data', () => {
    expect(readOptions({ pipeline: 'app', env: { A: '1' }, meta_data: { k: 'v' } }, 'acme')).toEqual({
      org: 'acme',
      pipeline: 'app',
      env: { A: '1' },
      metaData: { k: 'v' },
    });
  });

  it.each([
    [{}, 'names no Buildkite pipeline'],
    [{ pipeline: '../../admin' }, 'treadle.buildkite.pipeline must be a pipeline slug, got "../../admin"'],
    [{ pipeline: '-rf' }, 'must be a pipeline slug'],
    [{ pipeline: 'app', org: 'acme/../x' }, 'treadle.buildkite.org must be an organisation slug'],
    [{ pipeline: ['app'] }, 'must be a pipeline slug'],
    [{ pipeline: 'app', env: 'A=1' }, 'treadle.buildkite.env must be a mapping'],
    [{ pipeline: 'app', branch: '' }, 'treadle.buildkite.branch must be a non-empty string'],
  ])('refuses %j: %s', (options, message) => {
    expect(() => readOptions(options as Record<string, unknown>, 'acme')).toThrow(PermanentError);
    expect(() => readOptions(options as Record<string, unknown>, 'acme')).toThrow(message);
  });

  it('needs an organisation from the workflow or TREADLE_BUILDKITE_ORG', () => {
    expect(() => readOptions({ pipeline: 'app' }, undefined)).toThrow(/no Buildkite organisation/);
  });
});
