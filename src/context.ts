/**
 * The composition root: every long-lived dependency is built here from config, once, and
 * handed to the subsystems that need it. Nothing else reads the environment or opens the DB.
 */
import type { Config } from './config.ts';
import { type Db, openDatabase } from './db/database.ts';
import { EventStore } from './db/event-store.ts';
import { InstanceLock } from './db/instance-lock.ts';
import { QueueStore } from './db/queue-store.ts';
import { EventLog } from './events/index.ts';
import { type Logger, subsystemLogger } from './logger.ts';
import { Queue } from './queue/index.ts';

export interface AppContext {
  config: Config;
  log: Logger;
  db: Db;
  lock: InstanceLock;
  queue: Queue;
  events: EventLog;
}

/**
 * Opens the database, applies migrations and takes the single-instance lock (throws
 * InstanceLockedError if another live treadle holds it). Closes the database on failure.
 */
export function createContext(config: Config, log: Logger): AppContext {
  const db = openDatabase(config.db);
  try {
    const lock = new InstanceLock(db, config.db);
    lock.acquire();
    const queue = new Queue(new QueueStore(db), subsystemLogger(log, 'queue'), config.queue);
    const events = new EventLog(new EventStore(db));
    return { config, log, db, lock, queue, events };
  } catch (err) {
    db.close();
    throw err;
  }
}
