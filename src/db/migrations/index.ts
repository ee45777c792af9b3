import { sql as queue } from './0001-queue.ts';
import { sql as events } from './0002-events.ts';
import { sql as discovery } from './0003-discovery.ts';
import { sql as pipelines } from './0004-pipelines.ts';
import { sql as ci } from './0005-ci.ts';
import { sql as buildkite } from './0006-buildkite.ts';
import { sql as secrets } from './0007-secrets.ts';
import { sql as runs } from './0008-runs.ts';
import { sql as greenness } from './0009-greenness.ts';
import { sql as landing } from './0010-landing.ts';
import { sql as deadLetters } from './0011-dead-letters.ts';
import { sql as retention } from './0012-retention.ts';
import { sql as greennessCounts } from './0013-greenness-counts.ts';
import { sql as buildkiteRetention } from './0014-buildkite-retention.ts';
import { sql as logStreams } from './0015-log-streams.ts';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Every migration, in order. Append only; never edit a released entry. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'queue', sql: queue },
  { version: 2, name: 'events', sql: events },
  { version: 3, name: 'discovery', sql: discovery },
  { version: 4, name: 'pipelines', sql: pipelines },
  { version: 5, name: 'ci', sql: ci },
  { version: 6, name: 'buildkite', sql: buildkite },
  { version: 7, name: 'secrets', sql: secrets },
  { version: 8, name: 'runs', sql: runs },
  { version: 9, name: 'greenness', sql: greenness },
  { version: 10, name: 'landing', sql: landing },
  { version: 11, name: 'dead-letters', sql: deadLetters },
  { version: 12, name: 'retention', sql: retention },
  { version: 13, name: 'greenness-counts', sql: greennessCounts },
  { version: 14, name: 'buildkite-retention', sql: buildkiteRetention },
  { version: 15, name: 'log-streams', sql: logStreams },
];
