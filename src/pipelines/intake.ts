/**
 * Intake of `sh.tangled.pipeline` frames from knots (spindle protocol §6, with §16's fixes):
 * the record must validate, name the knot it came from and a repo this spindle serves; a
 * (knot, rkey) seen before runs nothing; each workflow is routed to a runner and gets
 * `pending` (then a dispatch message), or one `failed` when it cannot run. The pipeline itself
 * is written to /events before its statuses. All of it commits in one transaction.
 */

import type { RecordValidator } from '../atproto/lexicons.ts';
import type { PipelineStore } from '../db/pipeline-store.ts';
import type { RepoStore } from '../db/repo-store.ts';
import { errorMessage } from '../errors.ts';
import type { EventLog } from '../events/index.ts';
import type { Logger } from '../logger.ts';
import type { Queue } from '../queue/index.ts';
import { type RoutingTable, routeWorkflow } from './routing.ts';
import { PIPELINE_NSID, type StatusWriter } from './status-writer.ts';

export const INTAKE_TOPIC = 'pipeline.intake';
const REPLAY = 'already received (replay)';
export const DISPATCH_TOPIC = 'workflow.dispatch';

export interface IntakeMessage {
  knot: string;
  rkey: string;
  /** The frame's `event`, unvalidated. */
  event: Record<string, unknown>;
}

export interface DispatchMessage {
  knot: string;
  rkey: string;
  name: string;
}

interface PipelineRecord {
  $type: string;
  triggerMetadata: {
    kind: string;
    repo: { knot: string; did: string; repo: string; defaultBranch?: string };
  };
  workflows: Array<{ name: string; engine: string; raw: string; clone?: unknown }>;
}

export type IntakeOutcome =
  | { accepted: true; workflows: number; pending: number }
  | { accepted: false; reason: string };

export interface IntakeDeps {
  store: PipelineStore;
  repos: RepoStore;
  events: EventLog;
  queue: Queue;
  statuses: StatusWriter;
  validator: RecordValidator;
  routing: RoutingTable;
  log: Logger;
}

export class Intake {
  private readonly d: IntakeDeps;

  constructor(deps: IntakeDeps) {
    this.d = deps;
  }

  /** Publishes a knot's pipeline frame for intake; a repeat of (knot, rkey) is not stored again. */
  publish(message: IntakeMessage): boolean {
    const id = `${message.knot}/${message.rkey}`;
    return this.d.queue.publish(INTAKE_TOPIC, message.knot, id, message).published;
  }

  handle(message: IntakeMessage): IntakeOutcome {
    const outcome = this.accept(message);
    const where = { knot: message.knot, rkey: message.rkey };
    if (outcome.accepted) this.d.log.info({ ...where, ...outcome }, 'pipeline accepted');
    else if (outcome.reason === REPLAY) this.d.log.debug(where, 'pipeline already received; replay ignored');
    else this.d.log.warn({ ...where, reason: outcome.reason }, 'pipeline dropped');
    return outcome;
  }

  private accept({ knot, rkey, event }: IntakeMessage): IntakeOutcome {
    const { store, repos, validator } = this.d;
    if (store.pipeline(knot, rkey)) return { accepted: false, reason: REPLAY };
    let record: PipelineRecord;
    try {
      // Like stock's decoder, skip null workflow entries rather than failing the whole record.
      const workflows = Array.isArray(event.workflows)
        ? event.workflows.filter((w) => w !== null)
        : event.workflows;
      record = validator.validate<PipelineRecord>(PIPELINE_NSID, { ...event, workflows });
    } catch (err) {
      return { accepted: false, reason: errorMessage(err) };
    }
    const trigger = record.triggerMetadata;
    if (trigger.repo.knot !== knot) {
      return {
        accepted: false,
        reason: `triggerMetadata.repo.knot ${JSON.stringify(trigger.repo.knot)} is not the sending knot`,
      };
    }
    const repo = repos.servedRepoByName(knot, trigger.repo.did, trigger.repo.repo);
    if (!repo)
      return { accepted: false, reason: `repo ${trigger.repo.did}/${trigger.repo.repo} is not served here` };
    if (record.workflows.length === 0) return { accepted: false, reason: 'no workflows' };

    const routes = record.workflows.map((w) => ({
      w,
      route: routeWorkflow(w.raw, w.engine, this.d.routing),
    }));
    let pending = 0;
    this.d.events.transaction(() => {
      store.insertPipeline({
        knot,
        rkey,
        repoOwner: repo.owner,
        repoName: repo.name,
        record: JSON.stringify(record),
        receivedAt: Date.now(),
      });
      this.d.events.append(PIPELINE_NSID, rkey, record);
      for (const { w, route } of routes) {
        const key = { knot, rkey, name: w.name };
        store.insertWorkflow({
          ...key,
          engine: w.engine,
          runner: route.ok ? route.runner : null,
          options: JSON.stringify(route.ok ? route.options : {}),
        });
        if (!route.ok) {
          this.d.statuses.write(key, { status: 'failed', error: route.error, exitCode: -1 });
          continue;
        }
        this.d.statuses.write(key, { status: 'pending' });
        this.d.queue.publish<DispatchMessage>(
          DISPATCH_TOPIC,
          `${knot}/${rkey}/${w.name}`,
          `${knot}/${rkey}/${w.name}`,
          key,
        );
        pending++;
      }
    });
    return { accepted: true, workflows: routes.length, pending };
  }
}
