/**
 * The spindle: discovery (Jetstream + PDS backfill) decides which repos are served and so which
 * knots to follow; knot frames go through the durable queue to intake, dispatch and the
 * status log; runners' logs go to the log store; /events and /logs serve the appview.
 * Built once by the Service from the AppContext.
 */
import type { IncomingMessage } from 'node:http';
import { dirname, join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { Hono } from 'hono';
import { BuildkiteRunner, type WebhookEvent } from '../providers/buildkite/buildkite-runner.ts';
import { mountBuildkiteWebhooks, WEBHOOK_TOPIC } from '../providers/buildkite/webhooks.ts';
import type { BuildRunner } from '../providers/runner.ts';
import { RecordValidator } from './atproto/lexicons.ts';
import { ServiceAuth } from './atproto/service-auth.ts';
import { CiApi } from './ci/ci-api.ts';
import { PipelineLogSubscriptions, SUBSCRIBE_LOGS_PATH } from './ci/log-subscription.ts';
import type { AppContext } from './context.ts';
import { CursorStore } from './db/cursor-store.ts';
import { LogStore } from './db/log-store.ts';
import { PipelineStore, type WorkflowKey } from './db/pipeline-store.ts';
import { RepoStore } from './db/repo-store.ts';
import { RunKeyStore } from './db/run-key-store.ts';
import { BACKFILL_TOPIC, Backfiller, type BackfillMessage } from './discovery/backfill.ts';
import { JetstreamConsumer } from './discovery/jetstream.ts';
import { DISCOVERY_COLLECTIONS, RecordIngester } from './discovery/records.ts';
import { EventsServer } from './events/index.ts';
import { WorkflowFetcher } from './git/workflow-fetcher.ts';
import type { UpgradeRoutes } from './http/server.ts';
import { DefaultBranches } from './knots/default-branch.ts';
import { KnotConsumers } from './knots/knot-consumer.ts';
import type { KnotFrame } from './knots/knot-frame.ts';
import { RepoEvents } from './knots/repo-events.ts';
import { subsystemLogger } from './logger.ts';
import { LogCollector } from './logs/log-collector.ts';
import { LOGS_PREFIX, LogsServer } from './logs/logs-server.ts';
import { Dispatcher } from './pipelines/dispatch.ts';
import { INTAKE_TOPIC, Intake, type IntakeMessage } from './pipelines/intake.ts';
import { PULL_COLLECTIONS, PULL_TOPIC, PullIntake, type PullMessage } from './pipelines/pull-intake.ts';
import {
  isNewShapeRefUpdate,
  PUSH_TOPIC,
  PushIntake,
  type PushMessage,
  REF_UPDATE_NSID,
} from './pipelines/push-intake.ts';
import { createRunners, routingTable } from './pipelines/runners.ts';
import { DISPATCH_TOPIC, type DispatchMessage, PipelineStarter } from './pipelines/starter.ts';
import { PIPELINE_NSID, StatusWriter } from './pipelines/status-writer.ts';
import { ManualTriggers } from './runs/manual-trigger.ts';
import { RunApi } from './runs/run-api.ts';
import { RETRY_GROUP, RETRY_TOPIC, Retrier, type RetryMessage } from './runs/run-control.ts';
import { loadKeyring } from './secrets/keyring.ts';
import { Masker } from './secrets/masker.ts';
import { SecretApi } from './secrets/secret-api.ts';
import { SecretStore } from './secrets/secret-store.ts';

const RKEY = /^[A-Za-z0-9._~:-]{1,512}$/;

export interface SpindleOptions {
  /** Replaces the configured runners (tests, the benchmark). */
  runners?: Map<string, BuildRunner>;
  knotBackoffMs?: { min: number; max: number };
  jetstreamBackoffMs?: { min: number; max: number };
  pingIntervalMs?: number;
}

export class Spindle {
  readonly repos: RepoStore;
  readonly pipelines: PipelineStore;
  readonly lines: LogStore;
  readonly runKeys: RunKeyStore;
  readonly runners: Map<string, BuildRunner>;
  readonly knots: KnotConsumers;
  readonly jetstream: JetstreamConsumer;
  readonly events: EventsServer;
  readonly logs: LogsServer;
  readonly ci: CiApi;
  readonly secrets: SecretStore;
  private readonly secretApi: SecretApi;
  private readonly runApi: RunApi;
  readonly logSubscriptions: PipelineLogSubscriptions;
  private readonly ctx: AppContext;
  private readonly collector: LogCollector;
  private readonly backfill: Backfiller;
  private readonly intake: Intake;
  private readonly pushes: PushIntake;
  private readonly pulls: PullIntake;
  private readonly repoEvents: RepoEvents;

  /** Builds every part; throws ConfigError when the engine map names an unknown runner. */
  constructor(ctx: AppContext, options: SpindleOptions = {}) {
    this.ctx = ctx;
    const { config, db, queue, log } = ctx;
    this.runners =
      options.runners ??
      createRunners(config, {
        db,
        log,
        onProgress: (requestId) => queue.wake(DISPATCH_TOPIC, requestId),
      });
    const routing = routingTable(config, this.runners.keys());
    const validator = new RecordValidator();
    const cursors = new CursorStore(db);
    this.repos = new RepoStore(db, config.owner);
    this.pipelines = new PipelineStore(db);
    this.lines = new LogStore(db);
    this.collector = new LogCollector({
      store: this.pipelines,
      lines: this.lines,
      log: subsystemLogger(log, 'logs'),
      maskerFor: (key) => new Masker(this.secretsOf(key).values()),
    });
    const statuses = new StatusWriter({
      store: this.pipelines,
      events: ctx.events,
      onWritten: (key) => this.collector.notify(key),
    });
    this.runKeys = new RunKeyStore(db);
    const starter = new PipelineStarter({
      store: this.pipelines,
      runKeys: this.runKeys,
      events: ctx.events,
      queue,
      statuses,
      routing,
    });
    const intakeLog = subsystemLogger(log, 'intake');
    this.intake = new Intake({
      store: this.pipelines,
      repos: this.repos,
      runKeys: this.runKeys,
      events: ctx.events,
      queue,
      starter,
      validator,
      log: intakeLog,
      adoptAfterMs: config.pushHoldMs + 3000,
    });
    const fetcher = new WorkflowFetcher({
      dir: config.repoDir ?? join(dirname(config.db), 'repos'),
      dev: config.dev,
      log: subsystemLogger(log, 'git'),
    });
    this.ci = new CiApi({ db, pipelines: this.pipelines, repos: this.repos, fetcher });
    const keys = loadKeyring(config.secretsKey, config.db);
    if (keys.created)
      log.warn(
        { file: keys.file },
        'TREADLE_SECRETS_KEY is unset: created a secrets key file (mode 0600); back it up with the database, or secrets are lost',
      );
    this.secrets = new SecretStore(db, keys.keyring);
    this.secrets.onMoved = (from, to, count) =>
      log.info({ from, to, count }, 'secrets moved to the repo DID');
    const auth = new ServiceAuth({
      hostname: config.hostname,
      identity: { plcUrl: config.plcUrl, dev: config.dev },
      log: subsystemLogger(log, 'auth'),
    });
    this.secretApi = new SecretApi({
      auth,
      repos: this.repos,
      secrets: this.secrets,
      log: subsystemLogger(log, 'secrets'),
    });
    const defaultBranches = new DefaultBranches({ dev: config.dev, log: intakeLog });
    const builders = {
      repos: this.repos,
      runKeys: this.runKeys,
      events: ctx.events,
      queue,
      starter,
      fetcher,
      defaultBranches,
      validator,
      log: intakeLog,
    };
    const runsLog = subsystemLogger(log, 'runs');
    this.runApi = new RunApi({
      auth,
      validator,
      repos: this.repos,
      pipelines: this.pipelines,
      queue,
      triggers: new ManualTriggers({
        repos: this.repos,
        fetcher,
        defaultBranches,
        events: ctx.events,
        starter,
        log: runsLog,
      }),
      owner: config.owner,
      log: runsLog,
    });
    const retrier = new Retrier({
      store: this.pipelines,
      repos: this.repos,
      events: ctx.events,
      starter,
      log: runsLog,
    });
    queue.consume<RetryMessage>(RETRY_TOPIC, RETRY_GROUP, (m) => retrier.handle(m.payload));
    this.pushes = new PushIntake({ ...builders, holdMs: config.pushHoldMs });
    const identity = { plcUrl: config.plcUrl, dev: config.dev };
    this.pulls = new PullIntake({ ...builders, identity });
    this.repoEvents = new RepoEvents({
      repos: this.repos,
      pipelines: this.pipelines,
      validator,
      log: subsystemLogger(log, 'knots'),
    });
    const dispatcher = new Dispatcher({
      store: this.pipelines,
      statuses,
      runners: this.runners,
      log: subsystemLogger(log, 'dispatch'),
      dev: config.dev,
      pollIntervalMs: config.pollIntervalMs,
      maxAttempts: config.queue.maxAttempts,
      secretsFor: (key) => Object.fromEntries(this.secretsOf(key)),
      onBuild: (key, runner, buildId) => this.collector.attach(key, runner, buildId),
    });
    queue.consume<IntakeMessage>(INTAKE_TOPIC, 'intake', (m, d) => {
      this.intake.handle(m.payload, d);
    });
    queue.consume<PushMessage>(PUSH_TOPIC, 'intake', (m, d) => this.pushes.handle(m.payload, d));
    queue.consume<PullMessage>(PULL_TOPIC, 'intake', (m) => this.pulls.handle(m.payload));
    queue.consume<DispatchMessage>(DISPATCH_TOPIC, 'dispatch', (m, d) => dispatcher.handle(m, d));
    const buildkite = this.runners.get('buildkite');
    queue.consume<WebhookEvent>(WEBHOOK_TOPIC, 'buildkite', (m) => {
      if (!(buildkite instanceof BuildkiteRunner) || !buildkite.onWebhook(m.payload))
        log.debug(
          { build: m.payload.build?.id, event: m.payload.event },
          'Buildkite webhook for a build not started here',
        );
    });

    const discoveryLog = subsystemLogger(log, 'discovery');
    const ingester = new RecordIngester({
      repos: this.repos,
      validator,
      hostname: config.hostname,
      owner: config.owner,
      log: discoveryLog,
      onMemberAdded: (did) => this.backfill.request(did, 'new member'),
      onChange: () => void this.reconcileKnots(),
    });
    this.backfill = new Backfiller({
      queue,
      repos: this.repos,
      ingester,
      owner: config.owner,
      identity,
      log: discoveryLog,
    });
    queue.consume<BackfillMessage>(BACKFILL_TOPIC, 'backfill', (m) => this.backfill.handle(m.payload));
    this.jetstream = new JetstreamConsumer({
      url: config.jetstreamUrl,
      collections: [...DISCOVERY_COLLECTIONS, ...PULL_COLLECTIONS],
      cursors,
      log: subsystemLogger(log, 'jetstream'),
      onEvent: (ev) => {
        if ((PULL_COLLECTIONS as readonly string[]).includes(ev.collection)) this.pulls.offer(ev);
        else ingester.apply(ev);
      },
      onGap: (reason) => {
        for (const did of new Set([config.owner, ...this.repos.members()]))
          this.backfill.request(did, reason);
      },
      minBackoffMs: options.jetstreamBackoffMs?.min,
      maxBackoffMs: options.jetstreamBackoffMs?.max,
    });
    this.knots = new KnotConsumers({
      dev: config.dev,
      cursors,
      log: subsystemLogger(log, 'knots'),
      onFrame: (knot, frame) => this.onKnotFrame(knot, frame),
      minBackoffMs: options.knotBackoffMs?.min,
      maxBackoffMs: options.knotBackoffMs?.max,
    });
    const pingIntervalMs = options.pingIntervalMs ?? config.pingIntervalMs;
    this.events = new EventsServer(ctx.events, subsystemLogger(log, 'events'), { pingIntervalMs });
    this.logs = new LogsServer(
      {
        store: this.pipelines,
        lines: this.lines,
        collector: this.collector,
        log: subsystemLogger(log, 'logs'),
      },
      { pingIntervalMs },
    );
    this.logSubscriptions = new PipelineLogSubscriptions({
      store: this.pipelines,
      lines: this.lines,
      collector: this.collector,
      log: subsystemLogger(log, 'logs'),
      pingIntervalMs,
    });
  }

  /**
   * The secrets of the repository a workflow's pipeline belongs to. A value that cannot be
   * opened (a missing key) leaves the run without secrets, as stock does, and says so.
   */
  secretsOf(key: WorkflowKey): Map<string, string> {
    const p = this.pipelines.pipeline(key.knot, key.rkey);
    if (!p) return new Map();
    const repo = p.repoDid
      ? this.repos.servedRepoByDid(p.repoDid)
      : this.repos.servedRepoByName(key.knot, p.repoOwner, p.repoName);
    if (!repo) return new Map();
    try {
      return this.secrets.values(this.secrets.keyFor(repo));
    } catch (err) {
      this.ctx.log.error(
        { ...key, err: (err as Error).message },
        'secrets could not be opened; running without them',
      );
      return new Map();
    }
  }

  /** The XRPC methods beyond `sh.tangled.owner`: the ci API, secrets, trigger and cancel. */
  mountXrpc(app: Hono): void {
    this.ci.mount(app);
    this.secretApi.mount(app);
    this.runApi.mount(app);
  }

  /** Plain HTTP routes beside the XRPC methods: Buildkite's webhooks. */
  mountRoutes(app: Hono): void {
    const bk = this.ctx.config.buildkite;
    mountBuildkiteWebhooks(app, {
      secret: this.runners.has('buildkite') ? bk.webhookSecret : undefined,
      mode: bk.webhookMode,
      queue: this.ctx.queue,
      log: subsystemLogger(this.ctx.log, 'buildkite'),
    });
  }

  get upgradeRoutes(): UpgradeRoutes {
    return {
      '/events': (req: IncomingMessage, socket: Duplex, head: Buffer) =>
        this.events.handleUpgrade(req, socket, head),
      [LOGS_PREFIX]: (req: IncomingMessage, socket: Duplex, head: Buffer) =>
        this.logs.handleUpgrade(req, socket, head),
      [SUBSCRIBE_LOGS_PATH]: (req: IncomingMessage, socket: Duplex, head: Buffer) =>
        this.logSubscriptions.handleUpgrade(req, socket, head),
    };
  }

  /** Resumes log collection for unfinished builds, follows knots of served repos, joins Jetstream. */
  async start(): Promise<void> {
    for (const w of this.pipelines.unfinishedLogs()) {
      const runner = w.runner ? this.runners.get(w.runner) : undefined;
      if (runner && w.buildId) this.collector.attach(w, runner, w.buildId);
      else this.pipelines.setLogsDone(w);
    }
    await this.reconcileKnots();
    await this.jetstream.start();
  }

  /** Stops reading from the network first, then the servers and log collection. */
  async stop(): Promise<void> {
    await Promise.all([this.jetstream.stop(), this.knots.stop()]);
    await Promise.all([
      this.events.close(),
      this.logs.close(),
      this.logSubscriptions.close(),
      this.collector.stop(),
    ]);
  }

  private reconcileKnots(): Promise<void> {
    return this.knots.reconcile(new Set(this.repos.servedRepos().map((r) => r.knot)));
  }

  /**
   * Knot frames (2026 spec §4.2): pipelines are adopted (Intake), new-shape ref updates become
   * treadle's own push pipelines and mark the knot "new", old-shape ones are ignored (those knots
   * send pipelines), and repo DID and collaborator events update the repo tables.
   */
  private onKnotFrame(knot: string, frame: KnotFrame): void {
    const { nsid, event } = frame;
    if (this.repoEvents.apply(knot, nsid, event)) return;
    if (nsid !== PIPELINE_NSID && nsid !== REF_UPDATE_NSID) return;
    if (!RKEY.test(frame.rkey)) {
      this.ctx.log.warn(
        { knot, nsid, rkey: frame.rkey.slice(0, 80) },
        'knot frame with an invalid rkey skipped',
      );
      return;
    }
    if (nsid === PIPELINE_NSID) {
      this.intake.publish({ knot, rkey: frame.rkey, event });
      return;
    }
    if (!isNewShapeRefUpdate(event)) {
      this.ctx.log.debug(
        { knot, rkey: frame.rkey },
        'old-shape ref update: the knot sends its pipelines itself',
      );
      return;
    }
    if (this.runKeys.markNew(knot))
      this.ctx.log.info({ knot }, 'knot sends new-shape ref updates: pushes are built here');
    this.pushes.publish({ knot, rkey: frame.rkey, event, receivedAt: Date.now() });
  }
}
