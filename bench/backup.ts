/**
 * `npm run bench -- backup`: `treadle backup` of a 1 GB database while the daemon serves (a fake
 * knot sends 20 pipelines a second throughout), beside the `sqlite3` shell's `.backup` of the same
 * file in the same run: under the same load (given BENCH_BACKUP_LIMIT_S, 120 s, to finish), and
 * with the daemon idle, alone and followed by the `integrity_check` treadle also runs on its copy.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { FakeKnot } from '../fakes/knot.ts';
import { loadConfig } from '../src/config.ts';
import { openDatabase } from '../src/db/database.ts';
import { LogStore } from '../src/db/log-store.ts';
import { createLogger } from '../src/logger.ts';
import { Service } from '../src/service.ts';
import { env, seed } from './spindle.ts';
import { fmt, printTable } from './stats.ts';

const MB = Number(process.env.BENCH_BACKUP_MB ?? 1024);
const LIMIT_S = Number(process.env.BENCH_BACKUP_LIMIT_S ?? 120);
const TREADLE = new URL('../bin/treadle.js', import.meta.url).pathname;
const RAW =
  'engine: nixery\nsteps:\n  - name: test\n    command: echo hi\ntreadle:\n  stub:\n    duration: 0s\n';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function backupBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'treadle-bench-backup-'));
  const knot = await FakeKnot.start();
  try {
    const e = env(dir);
    const file = e.TREADLE_DB!;
    seed(file, [knot.host], 1);
    // Log lines of about 200 bytes (a long CI log's) until the file is MB big.
    const db = openDatabase(file);
    const lines = new LogStore(db);
    const line = `{"kind":"data","content":"${'x'.repeat(160)}","step_id":0,"stream":"stdout"}`;
    const batch = Array.from({ length: 1000 }, () => line);
    const bytes = () =>
      Number(db.pragma('page_count', { simple: true })) * Number(db.pragma('page_size', { simple: true }));
    for (let i = 0; bytes() < MB * 2 ** 20; ) {
      db.transaction(() => {
        for (const end = i + 100; i < end; i++)
          lines.appendMany({ knot: 'k', rkey: `r${i}`, name: 'ci' }, 0, batch);
      })();
    }
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    const size = statSync(file).size;

    const service = Service.create(loadConfig(e).config, createLogger('silent'));
    await service.start();
    while (knot.connected === 0) await sleep(10);
    let serving = true;
    let n = 0;
    const load = (async () => {
      while (serving) {
        n++;
        knot.emit('sh.tangled.pipeline', `3kbak${String(n).padStart(8, '0')}`, {
          $type: '',
          triggerMetadata: {
            kind: 'push',
            push: {
              newSha: n.toString(16).padStart(40, '0'),
              oldSha: '0'.repeat(40),
              ref: 'refs/heads/main',
            },
            repo: { defaultBranch: '', did: e.TREADLE_OWNER, knot: knot.host, repo: 'repo0' },
          },
          workflows: [
            { name: 'ci', engine: 'nixery', clone: { depth: 0, skip: false, submodules: false }, raw: RAW },
          ],
        });
        await sleep(50);
      }
    })();
    await sleep(1000);

    // Child processes, awaited: the daemon (in this process) keeps serving while they run.
    // Seconds, or Infinity when the command had not finished after `limitS`.
    const time = (cmd: string, args: string[], limitS = 600): Promise<number> =>
      new Promise((resolve, reject) => {
        const t0 = performance.now();
        execFile(
          cmd,
          args,
          { env: { ...process.env, ...e }, timeout: limitS * 1000 },
          (err, _out, stderr) => {
            if (err && (err as { killed?: boolean }).killed) resolve(Number.POSITIVE_INFINITY);
            else if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr}`));
            else resolve((performance.now() - t0) / 1000);
          },
        );
      });
    const sentBefore = n;
    const treadleS = await time(process.execPath, [TREADLE, 'backup', join(dir, 'treadle-copy.db')]);
    const sentDuring = n - sentBefore;
    // The sqlite3 shell's .backup copies 100 pages a step and starts again whenever another
    // connection writes the source: under the same load it may never finish.
    const sqliteBusyS = await time('sqlite3', [file, `.backup ${join(dir, 'sqlite-busy.db')}`], LIMIT_S);
    serving = false;
    await load;
    await sleep(500);
    const sqliteS = await time('sqlite3', [file, `.backup ${join(dir, 'sqlite-copy.db')}`]);
    const checkS = await time('sqlite3', [join(dir, 'sqlite-copy.db'), 'PRAGMA integrity_check;']);
    await service.stop();
    const secs = (s: number) => (Number.isFinite(s) ? fmt(s, 2) : `not done after ${LIMIT_S} s`);

    console.log(
      `database ${fmt(size / 2 ** 20)} MiB; the daemon took ${sentDuring} pipelines while treadle backup ran`,
    );
    printTable(
      ['', 'seconds'],
      [
        [
          'treadle backup while serving (copy, integrity_check, rename; includes Node start)',
          fmt(treadleS, 2),
        ],
        ['baseline: sqlite3 .backup while serving', secs(sqliteBusyS)],
        ['baseline: sqlite3 .backup, the daemon idle', fmt(sqliteS, 2)],
        ['baseline: sqlite3 .backup then PRAGMA integrity_check, the daemon idle', fmt(sqliteS + checkS, 2)],
      ],
    );
  } finally {
    await knot.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
