import { describe, expect, it } from 'vitest';
import { DEFAULT_DEADLINE_MS, parseGreenness, queueFor } from './config.ts';

const ok = (raw: unknown, env: Record<string, string> = {}) => {
  const r = parseGreenness(raw, env);
  if ('problems' in r) throw new Error(r.problems.join('\n'));
  return r.config;
};
const problems = (raw: unknown, env: Record<string, string> = {}) => {
  const r = parseGreenness(raw, env);
  return 'problems' in r ? r.problems : [];
};

describe('the greenness block', () => {
  it('makes every branch of every repo a queue when absent', () => {
    const config = ok(undefined);
    expect(queueFor(config, ['did:plc:r'], 'refs/heads/main')).toEqual({
      pipelineDeadlineMs: DEFAULT_DEADLINE_MS,
    });
    expect(queueFor(config, ['did:plc:r'], 'refs/heads/feature/x')).toBeDefined();
    expect(queueFor(config, ['did:plc:r'], 'refs/tags/v1')).toBeUndefined();
  });

  it('lets the first matching rule decide, with exclude, short refs, required workflows and deadlines', () => {
    const config = ok({
      queues: [
        { repo: 'did:plc:r', ref: 'wip/*', exclude: true },
        {
          repo: 'did:plc:r',
          ref: 'main',
          requiredWorkflows: ['build', 'test'],
          pipelineDeadline: '90m',
          promote: { target: 'verified-main' },
        },
        { repo: '*', ref: 'refs/heads/release-*' },
      ],
    });
    expect(queueFor(config, ['did:plc:r'], 'refs/heads/wip/x')).toBeUndefined();
    expect(queueFor(config, ['did:plc:r', 'did:plc:o/r'], 'refs/heads/main')).toEqual({
      requiredWorkflows: ['build', 'test'],
      pipelineDeadlineMs: 90 * 60_000,
      promote: { target: 'verified-main' },
    });
    expect(queueFor(config, ['did:plc:other'], 'refs/heads/main')).toBeUndefined();
    expect(queueFor(config, ['did:plc:other'], 'refs/heads/release-2')).toBeDefined();
  });

  it('matches a rule written with <ownerDid>/<name> for a repo that has a DID now', () => {
    const config = ok({ queues: [{ repo: 'did:plc:owner/hello', ref: 'main' }] });
    expect(queueFor(config, ['did:plc:repo', 'did:plc:owner/hello'], 'refs/heads/main')).toBeDefined();
  });

  it('names each bad key: unknown keys, bad globs, durations, repos, targets and hook secrets', () => {
    expect(problems({ queue: [] })).toEqual(['greenness: unknown key "queue"']);
    expect(problems({ queues: [{ ref: 'release-[0-9' }] })).toEqual([
      'greenness.queues[0].ref: not a valid glob',
    ]);
    expect(problems({ queues: [{ pipelineDeadline: 'soon' }] })[0]).toMatch(
      /^greenness\.queues\[0\]\.pipelineDeadline: not a duration/,
    );
    expect(problems({ queues: [{ repo: 'hello' }] })[0]).toMatch(/^greenness\.queues\[0\]\.repo: /);
    expect(problems({ queues: [{ promote: { target: '../x' } }] })[0]).toMatch(
      /^greenness\.queues\[0\]\.promote\.target: /,
    );
    expect(problems({ queues: [{ colour: 'green' }] })).toEqual([
      'greenness.queues[0]: unknown key "colour"',
    ]);
    expect(problems({ hooks: [{ url: 'https://deploy.example/h' }] })[0]).toMatch(
      /exactly one of secret or secretEnv/,
    );
    expect(problems({ hooks: [{ url: 'https://deploy.example/h', secretEnv: 'HOOK_SECRET' }] })).toEqual([
      'greenness.hooks[0].secretEnv: HOOK_SECRET is not set',
    ]);
    expect(
      ok(
        { hooks: [{ url: 'https://deploy.example/h', secretEnv: 'HOOK_SECRET' }] },
        { HOOK_SECRET: 'whsec_x' },
      ).hooks,
    ).toEqual([{ url: 'https://deploy.example/h', secret: 'whsec_x', events: ['greenness.*'] }]);
  });
});
