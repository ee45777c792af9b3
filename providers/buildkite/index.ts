/**
 * The Buildkite runner as a module: configured by TREADLE_BUILDKITE_TOKEN; its build table
 * (migration 0006) behind `BuildStore`; `POST /webhooks/buildkite` persisted on its own topic
 * `buildkite.webhook` and applied by its consumer, which wakes the run's dispatch.
 */
import { errorMessage } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { consumer } from '../../src/module.ts';
import type { DoctorLine, RunnerModule } from '../index.ts';
import { BuildStore } from './build-store.ts';
import { BuildkiteRunner, type WebhookEvent } from './buildkite-runner.ts';
import { BuildkiteClient } from './client.ts';
import { mountBuildkiteWebhooks, WEBHOOK_TOPIC } from './webhooks.ts';

export const buildkiteModule: RunnerModule = {
  name: 'buildkite',
  configured: (config) => !!config.buildkite.token,

  create(ctx) {
    const bk = ctx.config.buildkite;
    const log = ctx.log.child({ runner: 'buildkite' });
    const client = new BuildkiteClient({
      apiUrl: bk.apiUrl,
      token: bk.token!,
      requestsPerMinute: bk.requestsPerMinute,
      log,
      observe: ctx.observe,
    });
    const runner = new BuildkiteRunner({
      client,
      store: ctx.openStore((db) => new BuildStore(db)),
      log,
      org: bk.org,
      pollIntervalMs: bk.pollIntervalMs,
      onProgress: (requestId) => ctx.wake(requestId),
    });
    return {
      runner,
      routes: (app) =>
        mountBuildkiteWebhooks(app, {
          secret: bk.webhookSecret,
          mode: bk.webhookMode,
          publish: (partitionKey, id, event) => ctx.publish(WEBHOOK_TOPIC, partitionKey, id, event),
          log,
        }),
      consumers: [
        consumer<WebhookEvent>(WEBHOOK_TOPIC, 'buildkite', (m) => {
          if (!runner.onWebhook(m.payload))
            log.debug(
              { build: m.payload.build?.id, event: m.payload.event },
              'Buildkite webhook for a build not started here',
            );
        }),
      ],
    };
  },

  unconfiguredRoutes(app, log) {
    mountBuildkiteWebhooks(app, {
      secret: undefined,
      mode: 'token',
      publish: () => false,
      log: log.child({ runner: 'buildkite' }),
    });
  },

  async doctor(config) {
    const bk = config.buildkite;
    if (!bk.token)
      return [
        ['ok', 'Buildkite: not configured (set TREADLE_BUILDKITE_TOKEN to enable the buildkite runner)'],
      ];
    const out: DoctorLine[] = [];
    if (!bk.webhookSecret)
      out.push([
        'warn',
        'Buildkite: no TREADLE_BUILDKITE_WEBHOOK_SECRET; builds are tracked by polling alone',
      ]);
    if (!bk.org) {
      out.push([
        'warn',
        'Buildkite: no TREADLE_BUILDKITE_ORG; every workflow must name its org in treadle.buildkite.org',
      ]);
      return out;
    }
    const client = new BuildkiteClient({
      apiUrl: bk.apiUrl,
      token: bk.token,
      requestsPerMinute: 10,
      log: createLogger('silent'),
      maxAttempts: 1,
      timeoutMs: 10_000,
    });
    try {
      await client.request({
        method: 'GET',
        path: `/organizations/${bk.org}/builds`,
        query: [['per_page', '1']],
      });
      out.push(['ok', `Buildkite: the token can read builds of organisation ${bk.org} at ${bk.apiUrl}`]);
    } catch (err) {
      out.push([
        'FAIL',
        `Buildkite: ${errorMessage(err)} (check TREADLE_BUILDKITE_TOKEN, its read_builds scope, and TREADLE_BUILDKITE_ORG)`,
      ]);
    } finally {
      await client.close();
    }
    return out;
  },
};
