import { join } from 'node:path';
import type { QueueSettings } from '../../src/config.ts';
import { type Db, openDatabase } from '../../src/db/database.ts';
import { QueueStore } from '../../src/db/queue-store.ts';
import { createLogger } from '../../src/logger.ts';
import { Queue } from '../../src/queue/index.ts';
import { tempDir } from './temp.ts';

export interface TestQueue {
  db: Db;
  queue: Queue;
  path: string;
  close: () => Promise<void>;
}

/** A queue on a real SQLite file in a temp dir, with fast polling for tests. */
export function openTestQueue(settings: Partial<QueueSettings> = {}): TestQueue {
  const { dir, cleanup } = tempDir();
  const path = join(dir, 'queue.db');
  const db = openDatabase(path);
  const queue = new Queue(new QueueStore(db), createLogger('silent'), { pollIntervalMs: 50, ...settings });
  return {
    db,
    queue,
    path,
    close: async () => {
      await queue.stop(1000);
      db.close();
      cleanup();
    },
  };
}
