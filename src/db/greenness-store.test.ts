import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp.ts';
import { type Db, openDatabase } from './database.ts';
import { GreennessStore, type ValidationState, validationId } from './greenness-store.ts';
import { migrate } from './migrate.ts';

let db: Db;
let cleanup = () => {};
afterEach(() => {
  db?.close();
  cleanup();
});

const KEY = 'did:plc:o/app@refs/heads/main';

/** The counts as a scan of the validations computes them (what the triggers must agree with). */
function scanned(): { green: number; notGreen: number; pending: number } {
  return db
    .prepare(
      `SELECT count(*) FILTER (WHERE state = 'succeeded') AS green,
              count(*) FILTER (WHERE state IN ('failed', 'cancelled', 'expired')) AS notGreen,
              count(*) FILTER (WHERE state = 'pending') AS pending
       FROM gn_validation WHERE queue = (SELECT id FROM gn_queue WHERE key = ?)`,
    )
    .get(KEY) as { green: number; notGreen: number; pending: number };
}

describe('GreennessStore counts', () => {
  it('stay equal to a scan of the validations through inserts, verdicts, replays and attempt 2', () => {
    const t = tempDir();
    cleanup = t.cleanup;
    db = openDatabase(join(t.dir, 'treadle.db'));
    const store = new GreennessStore(db);
    store.ensureQueue(KEY, 'did:plc:o/app', 'refs/heads/main');
    expect(store.counts(KEY)).toEqual({ green: 0, notGreen: 0, pending: 0 });
    expect(store.counts('no such queue')).toEqual({ green: 0, notGreen: 0, pending: 0 });
    const verdicts: ValidationState[] = ['succeeded', 'failed', 'cancelled', 'expired', 'succeeded'];
    for (let seq = 1; seq <= 40; seq++) {
      const pipeline = `at://did:web:knot/sh.tangled.pipeline/p${seq}`;
      store.insertPipeline({
        pipeline,
        knot: 'knot',
        repo: 'did:plc:o/app',
        trigger: 'push',
        ref: 'refs/heads/main',
        commit: seq.toString(16).padStart(40, '0'),
        workflows: ['ci'],
        observedAt: 0,
      });
      store.insertValidation(
        { queue: KEY, seq, commit: seq.toString(16).padStart(40, '0'), pipeline, attempt: 1, deadlineAt: 0 },
        0,
      );
      if (seq % 4 === 0) continue; // stays pending
      const id = validationId(KEY, seq);
      expect(store.setState(id, 1, verdicts[seq % verdicts.length]!, 0)).toBe(true);
      // A replayed verdict changes nothing, the counts included.
      expect(store.setState(id, 1, 'succeeded', 0)).toBe(false);
      // Cancelled and expired commits get a second attempt: back to pending.
      if (seq % 5 === 3 && store.rebind(id, pipeline, 0, 0))
        expect(store.setState(id, 2, 'succeeded', 0)).toBe(true);
      expect(store.counts(KEY)).toEqual(scanned());
    }
    const c = store.counts(KEY);
    expect(c.green + c.notGreen + c.pending).toBe(40);
    expect(c.pending).toBe(10);
    expect(c.green).toBeGreaterThan(0);
    expect(c.notGreen).toBeGreaterThan(0);

    // A database from before migration 0013 gets its counts from the validations it holds.
    db.exec(`DROP TRIGGER gn_validation_counted; DROP TRIGGER gn_validation_recounted;
             ALTER TABLE gn_queue DROP COLUMN n_green; ALTER TABLE gn_queue DROP COLUMN n_not_green;
             ALTER TABLE gn_queue DROP COLUMN n_pending; DELETE FROM schema_migrations WHERE version = 13;`);
    migrate(db);
    expect(new GreennessStore(db).counts(KEY)).toEqual(c);
  });
});
