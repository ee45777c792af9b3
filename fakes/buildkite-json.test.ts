/**
 * The fake's self-test (buildkite spec §10.14): its serialisers reproduce fixtures F1–F4 from
 * the same inputs, written here by hand, and its signer reproduces V1–V6.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { signWebhook } from '../providers/buildkite/webhook-auth.ts';
import {
  type AgentSnap,
  agentLog,
  type BuildSnap,
  buildJson,
  type JobSnap,
  jobLogUrl,
  logJson,
  type Origins,
  webhookBody,
} from './buildkite-json.ts';

const fixture = (name: string) =>
  readFileSync(new URL(`../test/fixtures/buildkite/${name}`, import.meta.url), 'utf8');
const O: Origins = { api: 'https://api.buildkite.com', web: 'https://buildkite.com' };
const at = (text: string) => Date.parse(text);
const REQUEST_ID = '7f3c9a2e-1b4d-4c8e-9a6f-0d2e4b6a8c10';
const SHA = 'abcd0b72a1e580e90712cdd9eb26d3fb41cd09c8';

const AGENT: AgentSnap = {
  id: '0190c0de-aaaa-4bbb-8ccc-0123456789ab',
  name: 'agent-1',
  connectionState: 'connected',
  hostname: 'ci-host-1',
  ipAddress: '203.0.113.10',
  userAgent: 'buildkite-agent/3.80.0 (linux; amd64)',
};

function job(over: Partial<JobSnap>): JobSnap {
  return {
    id: '01905a8e-3c40-4f0d-8a7b-1c2d3e4f5a61',
    type: 'script',
    name: ':pipeline:',
    stepKey: null,
    stepId: '01905a8e-3c3f-4c2a-9d1e-aa11bb22cc33',
    state: 'scheduled',
    command: 'buildkite-agent pipeline upload',
    softFailed: false,
    exitStatus: null,
    signalReason: null,
    artifactPaths: null,
    agent: null,
    createdAt: at('2024-06-25T00:42:37.120Z'),
    scheduledAt: at('2024-06-25T00:42:37.101Z'),
    runnableAt: at('2024-06-25T00:42:37.150Z'),
    startedAt: null,
    finishedAt: null,
    retried: false,
    retriedInJobId: null,
    retriesCount: null,
    retrySource: null,
    ...over,
  };
}

function build(over: Partial<BuildSnap>): BuildSnap {
  return {
    id: '01905a8e-3c1d-7a2b-9e4f-5d6c7b8a9f01',
    org: 'acme',
    number: 42,
    state: 'scheduled',
    cancelReason: null,
    blocked: false,
    blockedState: null,
    message: 'Triggered by daemon (request 7f3c9a2e)',
    commit: SHA,
    branch: 'main',
    env: { DAEMON_REQUEST_ID: REQUEST_ID },
    author: { name: 'CI Daemon', email: 'ci-daemon@acme.test' },
    creator: {
      id: '3d3c3bf0-7d58-4afe-8fe7-b3017d5504de',
      name: 'CI Daemon',
      email: 'ci-daemon@acme.test',
      avatarUrl: 'https://www.gravatar.com/avatar/00000000000000000000000000000000',
      createdAt: at('2024-01-02T03:04:05.000Z'),
    },
    jobs: [job({})],
    createdAt: at('2024-06-25T00:42:37.101Z'),
    scheduledAt: at('2024-06-25T00:42:37.101Z'),
    startedAt: null,
    failingAt: null,
    finishedAt: null,
    metaData: { 'daemon:request_id': REQUEST_ID },
    pullRequest: null,
    rebuiltFrom: null,
    pipeline: {
      id: '0188f3b2-6a1c-4d5e-8f90-1a2b3c4d5e6f',
      slug: 'my-pipeline',
      name: 'My Pipeline',
      repository: 'git@github.com:acme/my-pipeline.git',
      defaultBranch: 'main',
      providerSettings: {},
      badgeToken: '0'.repeat(49),
      createdAt: at('2023-06-01T10:00:00.000Z'),
      counts: { scheduledBuilds: 1, runningBuilds: 0, scheduledJobs: 1, runningJobs: 0, waitingJobs: 0 },
    },
    ...over,
  };
}

const GIT_COMMIT = `commit ${SHA}\nabbrev-commit abcd0b72a1\nAuthor: Jane Dev <jane@acme.test>\n\n    Fix flaky test\n`;

describe('fake Buildkite serialisers reproduce the spec fixtures', () => {
  it('F1: the create response', () => {
    expect(buildJson(O, build({}))).toEqual(JSON.parse(fixture('f1-create-response.json')));
    // Key order is part of the wire shape.
    expect(JSON.stringify(buildJson(O, build({})))).toBe(
      JSON.stringify(JSON.parse(fixture('f1-create-response.json'))),
    );
  });

  it('F2: get with two jobs, exclude_pipeline, job_state_counts', () => {
    const f2 = build({
      state: 'running',
      startedAt: at('2024-06-25T00:42:40.000Z'),
      metaData: { 'daemon:request_id': REQUEST_ID, 'buildkite:git:commit': GIT_COMMIT },
      jobs: [
        job({
          name: ':package: Build',
          stepKey: 'build',
          state: 'passed',
          command: 'scripts/build.sh',
          exitStatus: 0,
          artifactPaths: '',
          agent: AGENT,
          startedAt: at('2024-06-25T00:42:40.000Z'),
          finishedAt: at('2024-06-25T00:42:44.310Z'),
        }),
        job({
          id: '01905a8e-3c41-4b6e-9c8d-7e6f5a4b3c22',
          name: ':jest: Tests',
          stepKey: 'test',
          stepId: '01905a8e-3c3f-4c2a-9d1e-dd44ee55ff66',
          state: 'running',
          command: './scripts/test.sh',
          artifactPaths: 'coverage/**/*',
          agent: AGENT,
          createdAt: at('2024-06-25T00:42:44.500Z'),
          runnableAt: at('2024-06-25T00:42:44.520Z'),
          startedAt: at('2024-06-25T00:42:45.000Z'),
        }),
      ],
    });
    const out = buildJson(O, f2, { excludePipeline: true, jobStateCounts: true });
    expect(JSON.stringify(out)).toBe(JSON.stringify(JSON.parse(fixture('f2-get-build.json'))));
  });

  it('F3: the job log JSON, header_times exact beyond 2^53', () => {
    const t0 = 1719276160000;
    const { bytes, headerTimesNs } = agentLog([
      { t: t0, text: '~~~ Running global environment hook' },
      { t: t0 + 1, text: '\x1b[90m$\x1b[0m /buildkite/agent/hooks/environment' },
      { t: t0 + 120, text: '~~~ Preparing working directory' },
      { t: t0 + 121, text: '\x1b[90m$\x1b[0m cd /buildkite/builds/agent-1/acme/my-pipeline' },
      { t: t0 + 1500, text: '~~~ Running script' },
      { t: t0 + 1501, text: '\x1b[90m$\x1b[0m ./scripts/test.sh' },
      { t: t0 + 1650, text: '--- :package: Installing dependencies' },
      { t: t0 + 3010, text: 'added 412 packages in 1s' },
      { t: t0 + 3200, text: '+++ :jest: Running tests' },
      { t: t0 + 8420, text: '\x1b[32mPASS\x1b[0m src/app.test.ts' },
      { t: t0 + 8421, text: 'Tests: 12 passed, 12 total' },
    ]);
    const url = jobLogUrl(O, build({}), '01905a8e-3c41-4b6e-9c8d-7e6f5a4b3c22');
    const text = logJson(url, bytes, headerTimesNs);
    const want = fixture('f3-job-log.json');
    // The fixture is pretty-printed: compare parsed fields, and the ns integers as text.
    const { header_times: _, ...rest } = JSON.parse(want);
    const { header_times: __, ...got } = JSON.parse(text);
    expect(got).toEqual(rest);
    const times = (s: string) =>
      /"header_times":\s*\[([^\]]*)\]/
        .exec(s)![1]!
        .split(',')
        .map((x) => x.trim());
    expect(times(text)).toEqual(times(want));
    expect(times(text)).toContain('1719276161650000000');
    expect(bytes.length).toBe(606);
    expect(bytes.subarray(bytes.length - 29).toString()).toBe('\x07Tests: 12 passed, 12 total\r\n');
  });

  it('F4: the build.finished webhook, byte for byte, and its signature (V6)', () => {
    const finished = build({
      state: 'passed',
      jobs: [],
      startedAt: at('2024-06-25T00:42:40.000Z'),
      finishedAt: at('2024-06-25T00:42:52.000Z'),
      metaData: { 'daemon:request_id': REQUEST_ID, 'buildkite:git:commit': GIT_COMMIT },
    });
    finished.pipeline = {
      ...finished.pipeline,
      providerSettings: { repository: 'acme/my-pipeline', trigger_mode: 'code' },
      counts: { scheduledBuilds: 0, runningBuilds: 0, scheduledJobs: 0, runningJobs: 0, waitingJobs: 0 },
    };
    const body = webhookBody(O, 'build.finished', finished, {
      id: '8a7693f8-dbae-4783-9137-84090fce9045',
      name: 'Some Person',
    });
    expect(Buffer.byteLength(body)).toBe(2247);
    expect(createHash('sha256').update(body).digest('hex')).toBe(
      '2091673e5b61561774939e52545e4f6ba242d5dca20de71f6e303b1daa33808e',
    );
    expect(body).toBe(fixture('build-finished.json').trimEnd());
    expect(signWebhook('whsec-test-2f9c1e', body, 1719276175)).toBe(
      'timestamp=1719276175,signature=b8ce741aa80b5e68bf04043ab1920cefbf2bb9712952c0651ffa221d6b5dd346',
    );
  });
});
