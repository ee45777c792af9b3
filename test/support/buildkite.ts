/** What the Buildkite tests share: the daemon's settings for a fake Buildkite, and workflows routed to it. */
import type { FakeBuildkite } from '../../fakes/buildkite.ts';

export function buildkiteEnv(
  bk: FakeBuildkite,
  secret: string,
  mode: 'token' | 'signature' = 'signature',
): Record<string, string> {
  return {
    TREADLE_BUILDKITE_TOKEN: bk.token,
    TREADLE_BUILDKITE_ORG: 'acme',
    TREADLE_BUILDKITE_API_URL: bk.apiUrl,
    TREADLE_BUILDKITE_WEBHOOK_SECRET: secret,
    TREADLE_BUILDKITE_WEBHOOK_MODE: mode,
  };
}

/** A workflow file that hands its run to the Buildkite pipeline `pipeline`. */
export function buildkiteWorkflow(name: string, pipeline: string, extra = ''): { name: string; raw: string } {
  return {
    name,
    raw: `engine: nixery\nsteps:\n  - name: test\n    command: npm test\ntreadle:\n  buildkite:\n    pipeline: ${pipeline}\n${extra}`,
  };
}
