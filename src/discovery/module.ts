/**
 * Discovery: Jetstream (members, repos, collaborators, pull records) and PDS backfills decide
 * which repos are served, and so which knots are followed; pull records are offered to the
 * pipelines capability.
 */
import type { AppContext } from '../context.ts';
import { subsystemLogger } from '../logger.ts';
import { consumer, type Module } from '../module.ts';
import { PULL_COLLECTIONS } from '../pipelines/pull-intake.ts';
import { BACKFILL_TOPIC, Backfiller, type BackfillMessage } from './backfill.ts';
import { JetstreamConsumer } from './jetstream.ts';
import type { RecordEvent } from './records.ts';
import { DISCOVERY_COLLECTIONS, RecordIngester } from './records.ts';

export interface DiscoveryDeps {
  knots: { reconcile(): Promise<void> };
  pulls: { offer(ev: RecordEvent): void };
  backoffMs?: { min: number; max: number };
}

export function createDiscovery(ctx: AppContext, deps: DiscoveryDeps): Module {
  const { config, queue, repos } = ctx;
  const log = subsystemLogger(ctx.log, 'discovery');
  const identity = { plcUrl: config.plcUrl, dev: config.dev };
  const ingester: RecordIngester = new RecordIngester({
    repos,
    validator: ctx.validator,
    hostname: config.hostname,
    owner: config.owner,
    log,
    onMemberAdded: (did) => backfill.request(did, 'new member'),
    onChange: () => void deps.knots.reconcile(),
  });
  const backfill = new Backfiller({ queue, repos, ingester, owner: config.owner, identity, log });
  const pullCollections: readonly string[] = PULL_COLLECTIONS;
  const jetstream = new JetstreamConsumer({
    url: config.jetstreamUrl,
    collections: [...DISCOVERY_COLLECTIONS, ...PULL_COLLECTIONS],
    cursors: ctx.cursors,
    log: subsystemLogger(ctx.log, 'jetstream'),
    onEvent: (ev) => {
      if (pullCollections.includes(ev.collection)) deps.pulls.offer(ev);
      else {
        backfill.noteLive(ev);
        ingester.apply(ev);
      }
    },
    onGap: (reason) => {
      for (const did of new Set([config.owner, ...repos.members()])) backfill.request(did, reason);
    },
    minBackoffMs: deps.backoffMs?.min,
    maxBackoffMs: deps.backoffMs?.max ?? config.streamMaxBackoffMs,
  });
  // Down longer than the longest backoff plus a connection attempt: more than a blip.
  const downLimitMs = (deps.backoffMs?.max ?? config.streamMaxBackoffMs) + 10_000;
  const { metrics } = ctx;
  metrics.collect(() => {
    const s = jetstream.status();
    for (const state of ['connected', 'connecting', 'backoff'] as const)
      metrics.streamConnections.set({ source: 'jetstream', state }, s.state === state ? 1 : 0);
    metrics.syncCounter(metrics.streamReconnects, { source: 'jetstream' }, s.reconnects);
  });
  return {
    name: 'discovery',
    readiness: () => {
      const s = jetstream.status();
      const ok = s.state === 'connected' || (s.state !== 'stopped' && s.downForMs <= downLimitMs);
      return {
        jetstream: ok
          ? undefined
          : s.state === 'stopped'
            ? 'not running'
            : `not connected for ${Math.round(s.downForMs / 1000)} s (${s.state})`,
      };
    },
    consumers: [consumer<BackfillMessage>(BACKFILL_TOPIC, 'backfill', (m) => backfill.handle(m.payload))],
    start: () => jetstream.start(),
    stop: () => jetstream.stop(),
  };
}
