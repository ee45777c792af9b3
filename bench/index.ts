/**
 * `npm run bench -- <name>`: runs one benchmark (or all, without a name). Each prints its
 * figures next to a baseline measured in the same run, on this machine.
 */
import { cpus, totalmem } from 'node:os';
import Database from 'better-sqlite3';
import { authBench } from './auth.ts';
import { backupBench } from './backup.ts';
import { buildkiteBench } from './buildkite.ts';
import { greennessBench } from './greenness.ts';
import { landingBench } from './landing.ts';
import { logLayoutBench } from './log-layout.ts';
import { metricsBench } from './metrics.ts';
import { protocol2026Bench } from './protocol2026.ts';
import { queueBench } from './queue.ts';
import { retentionBench } from './retention.ts';
import { spindleBench } from './spindle.ts';
import { uiBench } from './ui.ts';

const BENCHES: Record<string, () => Promise<void>> = {
  queue: queueBench,
  spindle: spindleBench,
  protocol2026: protocol2026Bench,
  buildkite: buildkiteBench,
  auth: authBench,
  greenness: greennessBench,
  landing: landingBench,
  metrics: metricsBench,
  retention: retentionBench,
  backup: backupBench,
  ui: uiBench,
  loglayout: logLayoutBench,
};

const names = process.argv.slice(2);
const unknown = names.filter((n) => !(n in BENCHES));
if (unknown.length > 0) {
  process.stderr.write(
    `unknown benchmark ${unknown.join(', ')}; available: ${Object.keys(BENCHES).join(', ')}\n`,
  );
  process.exit(2);
}
const sqlite = (new Database(':memory:').prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
console.log(
  `machine: ${cpus()[0]?.model ?? 'unknown cpu'} × ${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; ` +
    `node ${process.version}; sqlite ${sqlite}`,
);
for (const name of names.length > 0 ? names : Object.keys(BENCHES)) {
  console.log(`\n== ${name} ==`);
  await BENCHES[name]!();
}
