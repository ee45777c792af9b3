import { describe, expect, it } from 'vitest';
import { parseLanding } from './config.ts';

const target = {
  name: 'verified-main',
  repo: 'did:plc:repo',
  remoteUrl: 'git@knot.example.com:did:plc:repo',
  targetBranch: 'verified/main',
};
const problems = (raw: unknown, env: Record<string, string> = {}) => {
  const r = parseLanding(raw, env, '/data/repos');
  return 'problems' in r ? r.problems : [];
};

describe('the landing block', () => {
  it('fills in the spec defaults, with the checkout under the repo dir', () => {
    const r = parseLanding({ targets: [target] }, {}, '/data/repos');
    expect(r).toEqual({
      config: {
        targets: [
          {
            ...target,
            remote: 'origin',
            checkoutPath: '/data/repos/land/verified-main',
            defaultStrategy: 'REBASE',
            maxPushAttempts: 10,
            checkStaleness: true,
            allowUnrelatedHistories: false,
            promoteMode: 'ff-only',
            committer: { name: 'treadle', email: 'treadle@localhost' },
            gitCommandTimeoutMs: 120_000,
          },
        ],
      },
    });
  });

  it('names the key of every problem', () => {
    expect(problems({ targets: [{ ...target, colour: 'red' }] })).toEqual([
      'landing.targets[0]: unknown key "colour"',
    ]);
    expect(problems({ targets: [target, target] })).toEqual([
      'landing.targets[1].name: "verified-main" is already the name of targets[0]',
    ]);
    expect(
      problems({
        targets: [
          { ...target, checkoutPath: '/data/land/x' },
          { ...target, name: 'other', targetBranch: 'main', checkoutPath: '/data/land/x' },
        ],
      }),
    ).toEqual([
      'landing.targets[1].checkoutPath: shared with targets[0] but with another remoteUrl or targetBranch',
    ]);
    expect(problems({ targets: [{ ...target, checkoutPath: 'land/x' }] })).toEqual([
      'landing.targets[0].checkoutPath: an absolute path',
    ]);
    expect(problems({ targets: [{ ...target, targetBranch: '-x' }] })[0]).toMatch(
      /^landing\.targets\[0\]\.targetBranch: /,
    );
    expect(problems({ targets: [{ ...target, remoteUrl: '--upload-pack=evil' }] })[0]).toMatch(/remoteUrl/);
    expect(problems({ targets: [{ ...target, remoteUrl: 'https://u:p@knot.example.com/r' }] })[0]).toMatch(
      /credentials do not belong in the URL/,
    );
    expect(problems({ targets: [{ ...target, authHeaderEnv: 'LAND_AUTH' }] })).toEqual([
      'landing.targets[0].authHeaderEnv: LAND_AUTH is not set',
    ]);
    expect(problems({ targets: [{ ...target, promoteMode: 'force' }] })[0]).toMatch(
      /^landing\.targets\[0\]\.promoteMode: /,
    );
  });

  it('reads the auth header from its variable', () => {
    const r = parseLanding(
      { targets: [{ ...target, authHeaderEnv: 'LAND_AUTH' }] },
      { LAND_AUTH: 'Authorization: Basic eA==' },
      '/r',
    );
    expect('config' in r && r.config.targets[0]!.authHeader).toBe('Authorization: Basic eA==');
  });
});
