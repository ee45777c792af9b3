/**
 * Landing: treadle's VCS operations on real repositories (greenness-and-landing spec §7). Follows
 * `land.check` and `land.merge` (partitioned per target branch) and their dead letters, answers
 * each request on `<topic>.result`, serves the land API under /land/v1/, and provisions each
 * target's checkout at start.
 */
import type { AppContext } from '../context.ts';
import { LandingStore, type StoredResult } from '../db/landing-store.ts';
import { errorMessage } from '../errors.ts';
import { inheritedGitEnv } from '../git/git.ts';
import { subsystemLogger } from '../logger.ts';
import { consumer, type Module } from '../module.ts';
import { PullReader } from '../pipelines/pull-reader.ts';
import { LandApi } from './api.ts';
import { CHECK_TOPIC, MERGE_TOPIC } from './contract.ts';
import { LandingHandler } from './handler.ts';
import { Lander } from './lander.ts';

/** Land topics run git against remotes: a delivery may take long before it is presumed lost. */
const LAND_VISIBILITY_MS = 900_000;
const DAY_MS = 86_400_000;

export interface LandingModule extends Module {
  /** A target's latest results, newest first (the dashboard). */
  results(target: string, limit: number): StoredResult[];
}

export function createLanding(ctx: AppContext): LandingModule {
  const log = subsystemLogger(ctx.log, 'landing');
  const { targets } = ctx.config.landing;
  const inherited = inheritedGitEnv();
  const landers = new Map(
    targets.map((t) => [t.name, new Lander(t, inherited, log.child({ target: t.name }))]),
  );
  const store = new LandingStore(ctx.db);
  const handler = new LandingHandler({
    targets,
    landers,
    store,
    uow: ctx.uow,
    queue: ctx.queue,
    log,
    metrics: ctx.metrics,
  });
  const api = new LandApi({
    targets,
    landers,
    handler,
    store,
    queue: ctx.queue,
    repos: ctx.repos,
    auth: ctx.auth,
    ...(ctx.config.adminToken ? { adminToken: ctx.config.adminToken } : {}),
    pulls: {
      reader: new PullReader({
        identity: { plcUrl: ctx.config.plcUrl, dev: ctx.config.dev },
        validator: ctx.validator,
      }),
      repos: ctx.repos,
      pipelines: ctx.pipelines,
    },
    log,
  });
  let prune: NodeJS.Timeout | undefined;
  const options = { visibilityTimeoutMs: LAND_VISIBILITY_MS };
  return {
    name: 'landing',
    results: (target, limit) => store.latest(target, limit),
    consumers: [
      consumer(CHECK_TOPIC, 'land-check', (m) => handler.handle(m), options),
      consumer(MERGE_TOPIC, 'land-merge', (m) => handler.handle(m), options),
      consumer(`${CHECK_TOPIC}_dlq`, 'land-check-dlq', (m) => handler.deadLettered(m)),
      consumer(`${MERGE_TOPIC}_dlq`, 'land-merge-dlq', (m) => handler.deadLettered(m)),
    ],
    routes: (app) => api.mount(app),
    async start() {
      const pruned = store.prune(Date.now());
      if (pruned > 0) log.info({ pruned }, 'landing ledger entries over 30 days old removed');
      prune = setInterval(() => store.prune(Date.now()), DAY_MS);
      prune.unref();
      // Provisioning failures are not fatal: the first request on the target tries again.
      for (const lander of landers.values())
        lander
          .provision()
          .then(() =>
            log.info(
              { target: lander.target.name, checkout: lander.target.checkoutPath },
              'landing target ready',
            ),
          )
          .catch((err) =>
            log.warn(
              { target: lander.target.name, reason: errorMessage(err) },
              'landing target not provisioned yet',
            ),
          );
    },
    stop() {
      if (prune) clearInterval(prune);
    },
  };
}
