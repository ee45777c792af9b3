/**
 * The runner's own build rows under retention, on a real SQLite file: finished builds older than
 * the runs window go, in batches, and a build still running is never touched however old.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/database.ts';
import { migrate } from '../../src/db/migrate.ts';
import { RetentionStore } from '../../src/db/retention-store.ts';
import { createLogger } from '../../src/logger.ts';
import { Pruner } from '../../src/retention/pruner.ts';
import { tempDir } from '../../test/support/temp.ts';
import { BuildStore } from './build-store.ts';

const DAY = 86_400_000;
let cleanup = () => {};
afterEach(() => cleanup());

describe('BuildStore retention', () => {
  it('forgets finished builds past the runs window and keeps running and recent ones', async () => {
    const t = tempDir('treadle-bk-retention-');
    cleanup = t.cleanup;
    const db = openDatabase(join(t.dir, 'treadle.db'));
    migrate(db);
    const store = new BuildStore(db);
    const now = Date.UTC(2026, 11, 1);
    let number = 0;
    const build = (id: string, ageDays: number, finished: boolean) => {
      const at = now - ageDays * DAY;
      store.creating(id, 'org', 'pipe', at);
      const b = { id: `uuid-${id}`, number: ++number, state: finished ? 'passed' : 'running' };
      store.created(id, b, at);
      if (finished) store.setFinal(id, b);
    };
    for (let i = 0; i < 25; i++) build(`old/${i}/w`, 400 + i, true);
    build('old/running/w', 500, false);
    build('recent/done/w', 10, true);
    build('recent/running/w', 1, false);

    const pruner = new Pruner({
      store: new RetentionStore(db),
      windows: { eventsMs: 0, logsMs: 0, runsMs: 365 * DAY },
      runners: new Map([
        ['buildkite', { prune: (before: number, limit: number) => store.pruneFinished(before, limit) }],
      ]),
      log: createLogger('silent'),
      batch: 10,
      clock: () => now,
      rest: () => Promise.resolve(),
    });
    const counts = await pruner.prune();
    expect(counts.builds).toEqual({ buildkite: 25 });
    expect(store.get('old/0/w')).toBeUndefined();
    expect(store.get('old/24/w')).toBeUndefined();
    expect(store.get('old/running/w')?.state).toBe('running');
    expect(store.get('recent/done/w')?.final?.state).toBe('passed');
    expect(store.get('recent/running/w')).toBeDefined();
    expect((await pruner.prune()).builds).toEqual({});

    // A window of 0 keeps everything.
    const keepAll = new Pruner({
      store: new RetentionStore(db),
      windows: { eventsMs: 0, logsMs: 0, runsMs: 0 },
      runners: new Map([
        [
          'buildkite',
          {
            prune: () => {
              throw new Error('must not be called');
            },
          },
        ],
      ]),
      log: createLogger('silent'),
      clock: () => now + 10_000 * DAY,
    });
    expect((await keepAll.prune()).builds).toEqual({});
    db.close();
  });
});
