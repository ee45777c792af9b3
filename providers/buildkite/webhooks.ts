/**
 * `POST /webhooks/buildkite` (buildkite spec §8): 503 when Buildkite is not configured, 413 over
 * the body bound, 401 on a bad token or signature (nothing stored), else the build event is
 * persisted on the queue (deduplicated on build id, event, state and finish time) and answered
 * 200 at once; the runner applies it from the queue. Pings and other events are acknowledged
 * and ignored.
 */
import type { Hono } from 'hono';
import { readBody } from '../../src/http/body.ts';
import type { Logger } from '../../src/logger.ts';
import type { WebhookEvent } from './buildkite-runner.ts';
import type { BkBuild } from './state.ts';
import { verifyWebhook, type WebhookMode } from './webhook-auth.ts';

export const WEBHOOK_PATH = '/webhooks/buildkite';
export const WEBHOOK_TOPIC = 'buildkite.webhook';
const MAX_BODY = 1024 * 1024;

export interface WebhookRouteOptions {
  /** Undefined when the Buildkite runner is not configured. */
  secret: string | undefined;
  mode: WebhookMode;
  /** Persists the event on `buildkite.webhook` (deduplicated on `id`); false when it was a repeat. */
  publish: (partitionKey: string, id: string, event: WebhookEvent) => boolean;
  log: Logger;
}

export function mountBuildkiteWebhooks(app: Hono, o: WebhookRouteOptions): void {
  app.post(WEBHOOK_PATH, async (c) => {
    if (!o.secret)
      return c.json(
        {
          message: 'Buildkite webhooks are not configured on this spindle (TREADLE_BUILDKITE_WEBHOOK_SECRET)',
        },
        503,
      );
    // Bounded before the sender is verified: an unverified sender must not make us buffer.
    const body = await readBody(c, MAX_BODY);
    const verdict = verifyWebhook(
      o.mode,
      o.secret,
      { token: c.req.header('x-buildkite-token'), signature: c.req.header('x-buildkite-signature') },
      body,
    );
    if (!verdict.ok) {
      o.log.warn({ reason: verdict.reason, mode: o.mode }, 'Buildkite webhook rejected');
      return c.json({ message: 'invalid webhook credential' }, 401);
    }
    let payload: { event?: unknown; build?: Partial<BkBuild> };
    try {
      payload = JSON.parse(body.toString('utf8'));
    } catch {
      return c.json({ message: 'body is not JSON' }, 400);
    }
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload))
      return c.json({ message: 'body is not a JSON object' }, 400);
    const event =
      c.req.header('x-buildkite-event') ?? (typeof payload.event === 'string' ? payload.event : '');
    // Pings, job.* and agent.* events say nothing a run's status needs.
    if (!event.startsWith('build.')) return c.json({ ok: true, ignored: event || 'no event' });
    const build = payload.build;
    const malformed =
      typeof build !== 'object' || build === null
        ? 'no build object'
        : typeof build.id !== 'string' || build.id === ''
          ? 'no build.id'
          : typeof build.state !== 'string'
            ? 'no build.state'
            : !Number.isSafeInteger(build.number)
              ? 'no build.number'
              : undefined;
    if (malformed || !build) {
      o.log.warn({ event, reason: malformed }, 'Buildkite webhook refused: malformed build');
      return c.json({ message: `malformed ${event} event: ${malformed}` }, 400);
    }
    const message: WebhookEvent = {
      event,
      build: {
        id: build.id!,
        number: build.number!,
        state: build.state!,
        blocked: build.blocked === true,
        ...(typeof build.web_url === 'string' ? { web_url: build.web_url } : {}),
        started_at: typeof build.started_at === 'string' ? build.started_at : null,
        finished_at: typeof build.finished_at === 'string' ? build.finished_at : null,
        meta_data: isStringMap(build.meta_data) ? build.meta_data : {},
      },
    };
    const id = `${build.id} ${event} ${message.build!.state} ${message.build!.finished_at ?? ''} ${message.build!.blocked}`;
    o.publish(build.id!, id, message);
    return c.json({ ok: true });
  });
}

function isStringMap(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && Object.values(v).every((x) => typeof x === 'string');
}
