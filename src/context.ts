/**
 * The composition root's shared part: every long-lived dependency the capabilities share is
 * built here from config, once — the database and its unit of work, the instance lock, the
 * queue, the /events log, the shared stores, record validation, service auth — with one
 * AbortSignal for shutdown. Nothing else reads the environment or opens the DB.
 */
import { RecordValidator } from './atproto/lexicons.ts';
import { ServiceAuth } from './atproto/service-auth.ts';
import type { Config } from './config.ts';
import { CursorStore } from './db/cursor-store.ts';
import { type Db, openDatabase } from './db/database.ts';
import { EventStore } from './db/event-store.ts';
import { InstanceLock } from './db/instance-lock.ts';
import { LogStore } from './db/log-store.ts';
import { PipelineStore } from './db/pipeline-store.ts';
import { QueueStore } from './db/queue-store.ts';
import { RepoStore } from './db/repo-store.ts';
import { RunKeyStore } from './db/run-key-store.ts';
import { UnitOfWork } from './db/unit-of-work.ts';
import { EventLog } from './events/index.ts';
import { type Logger, subsystemLogger } from './logger.ts';
import { Metrics } from './metrics/metrics.ts';
import { Queue } from './queue/index.ts';

export interface AppContext {
  config: Config;
  log: Logger;
  db: Db;
  /** One transaction across stores, with work done after it commits. */
  uow: UnitOfWork;
  lock: InstanceLock;
  queue: Queue;
  events: EventLog;
  repos: RepoStore;
  pipelines: PipelineStore;
  lines: LogStore;
  runKeys: RunKeyStore;
  cursors: CursorStore;
  validator: RecordValidator;
  auth: ServiceAuth;
  /** Prometheus metrics: counters incremented where things happen, gauges read at scrape. */
  metrics: Metrics;
  /** Aborted when the daemon begins to shut down. */
  signal: AbortSignal;
}

/**
 * Opens the database, applies migrations and takes the single-instance lock (throws
 * InstanceLockedError if another live treadle holds it). Closes the database on failure.
 */
export function createContext(config: Config, log: Logger, signal: AbortSignal): AppContext {
  const db = openDatabase(config.db);
  try {
    const lock = new InstanceLock(db, config.db);
    lock.acquire();
    const uow = new UnitOfWork(db);
    const queue = new Queue(new QueueStore(db), subsystemLogger(log, 'queue'), config.queue, uow);
    const events = new EventLog(new EventStore(db), { uow });
    const metrics = new Metrics();
    const auth = new ServiceAuth({
      hostname: config.hostname,
      identity: { plcUrl: config.plcUrl, dev: config.dev },
      log: subsystemLogger(log, 'auth'),
      metrics,
    });
    return {
      config,
      log,
      db,
      uow,
      lock,
      queue,
      events,
      repos: new RepoStore(db, config.owner),
      pipelines: new PipelineStore(db),
      lines: new LogStore(db),
      runKeys: new RunKeyStore(db),
      cursors: new CursorStore(db),
      validator: new RecordValidator(),
      auth,
      metrics,
      signal,
    };
  } catch (err) {
    db.close();
    throw err;
  }
}
