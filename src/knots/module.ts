/**
 * Knots: one resumable event stream per knot a served repo names. Frames are routed by NSID
 * (2026 spec §4.2): pipelines go to `pipeline.intake`, new-shape ref updates mark the knot "new"
 * and go to `push.intake` (old-shape ones are ignored: those knots send pipelines), and repo
 * DID and collaborator events update the repo tables at once.
 */
import type { AppContext } from '../context.ts';
import { subsystemLogger } from '../logger.ts';
import type { Module } from '../module.ts';
import { publishPipelineIntake } from '../pipelines/intake.ts';
import { PIPELINE_NSID } from '../pipelines/pipeline.ts';
import { isNewShapeRefUpdate, publishPushIntake, REF_UPDATE_NSID } from '../pipelines/push-intake.ts';
import { KnotConsumers } from './knot-consumer.ts';
import type { KnotFrame } from './knot-frame.ts';
import { knotVersion, REPO_DID_CAPABILITY } from './knot-version.ts';
import { RepoEvents } from './repo-events.ts';

const RKEY = /^[A-Za-z0-9._~:-]{1,512}$/;

export interface KnotsModule extends Module {
  /** Follows exactly the knots that served repos name (after discovery changed them). */
  reconcile(): Promise<void>;
  /** Each followed knot with its connection state and time without one (the dashboard). */
  connections(): Array<{ knot: string; state: string; downForMs: number }>;
}

export function createKnots(
  ctx: AppContext,
  options: { backoffMs?: { min: number; max: number } },
): KnotsModule {
  const { repos, pipelines, runKeys, queue } = ctx;
  const log = subsystemLogger(ctx.log, 'knots');
  const repoEvents = new RepoEvents({ repos, pipelines, validator: ctx.validator, log });

  const onFrame = (knot: string, frame: KnotFrame): void => {
    const { nsid, event } = frame;
    if (repoEvents.apply(knot, nsid, event)) return;
    if (nsid !== PIPELINE_NSID && nsid !== REF_UPDATE_NSID) return;
    if (!RKEY.test(frame.rkey)) {
      log.warn({ knot, nsid, rkey: frame.rkey.slice(0, 80) }, 'knot frame with an invalid rkey skipped');
      return;
    }
    if (nsid === PIPELINE_NSID) {
      publishPipelineIntake(queue, { knot, rkey: frame.rkey, event });
      return;
    }
    if (!isNewShapeRefUpdate(event)) {
      log.debug({ knot, rkey: frame.rkey }, 'old-shape ref update: the knot sends its pipelines itself');
      return;
    }
    if (runKeys.markNew(knot)) log.info({ knot }, 'knot sends new-shape ref updates: pushes are built here');
    publishPushIntake(queue, { knot, rkey: frame.rkey, event, receivedAt: Date.now() });
  };

  // A knot that reports its capabilities says its generation up front; one that does not is
  // recognised by what it sends (a ref update with a repo DID marks it "new").
  const probed = new Set<string>();
  const probe = async (knot: string): Promise<void> => {
    if (probed.has(knot)) return;
    probed.add(knot);
    const v = await knotVersion(knot, { dev: ctx.config.dev, log });
    if (!v?.capabilities) return;
    const isNew = v.capabilities.includes(REPO_DID_CAPABILITY);
    log.info(
      { knot, version: v.version, capabilities: v.capabilities, generation: isNew ? 'new' : 'legacy' },
      'knot capabilities',
    );
    if (isNew && runKeys.markNew(knot)) log.info({ knot }, 'knot reports repo DIDs: pushes are built here');
  };

  const knots = new KnotConsumers({
    dev: ctx.config.dev,
    cursors: ctx.cursors,
    log,
    onFrame,
    onOpen: (knot) => void probe(knot),
    minBackoffMs: options.backoffMs?.min,
    maxBackoffMs: options.backoffMs?.max ?? ctx.config.streamMaxBackoffMs,
  });
  // Coalesced: a backfill applies thousands of repo records in a burst, and each asks for a
  // reconcile (reading every served repo). Asks that arrive while one is queued or running
  // share the next one, which still starts after the last ask, so none misses its change.
  let queued: Promise<void> | undefined;
  let running: Promise<void> = Promise.resolve();
  const reconcileNow = () => knots.reconcile(new Set(repos.servedRepos().map((r) => r.knot)));
  const reconcile = (): Promise<void> => {
    queued ??= running.then(
      () =>
        new Promise<void>((resolve, reject) => {
          setImmediate(() => {
            queued = undefined;
            running = reconcileNow().catch((err: unknown) => log.error({ err }, 'knot reconcile failed'));
            running.then(resolve, reject);
          });
        }),
    );
    return queued;
  };
  const { metrics } = ctx;
  metrics.collect(() => {
    const states = knots.states();
    for (const state of ['connected', 'connecting', 'backoff'] as const)
      metrics.streamConnections.set({ source: 'knot', state }, states[state]);
    metrics.syncCounter(metrics.streamReconnects, { source: 'knot' }, knots.reconnects);
  });
  return {
    name: 'knots',
    reconcile,
    connections: () => knots.connections(),
    start: reconcile,
    stop: () => knots.stop(),
  };
}
