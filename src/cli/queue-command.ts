import { parseArgs } from 'node:util';
import { loadAdminConfig } from '../config.ts';
import { openExistingDatabase } from '../db/database.ts';
import { type DeadLetter, QueueStore } from '../db/queue-store.ts';
import { dlqTopicOf } from '../queue/queue.ts';
import { EXIT } from './exit-codes.ts';
import { type Output, table } from './output.ts';

export const QUEUE_USAGE = `usage:
  treadle queue stats [--json]              per topic and group: ready, retrying, in flight, held, dead
  treadle queue dlq list <topic> [--json]   dead letters of a topic (oldest first)
  treadle queue dlq replay <topic> [id]     move dead letters back to their original topic
  treadle queue dlq drop <topic> <id>       delete a dead letter for good
options: --db <file> (default: TREADLE_DB)`;

type Action =
  | { kind: 'stats' }
  | { kind: 'list'; dlq: string }
  | { kind: 'replay'; dlq: string; id: string | undefined }
  | { kind: 'drop'; dlq: string; id: string };

/** `treadle queue …`: operates on the database file directly; safe while `serve` runs. */
export function queueCommand(args: string[], env: NodeJS.ProcessEnv, io: Output): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, db: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    io.out(QUEUE_USAGE);
    return EXIT.ok;
  }
  const action = parseAction(positionals);
  if (!action) {
    io.err(QUEUE_USAGE);
    return EXIT.usage;
  }
  const path = values.db ?? loadAdminConfig(env).config.db;
  const db = openExistingDatabase(path);
  try {
    return run(new QueueStore(db), action, values.json ?? false, io);
  } finally {
    db.close();
  }
}

function parseAction(positionals: string[]): Action | undefined {
  const [cmd, sub, topic, id, ...extra] = positionals;
  if (cmd === 'stats' && sub === undefined) return { kind: 'stats' };
  if (cmd !== 'dlq' || topic === undefined || extra.length > 0) return undefined;
  const dlq = dlqTopicOf(topic);
  if (sub === 'list' && id === undefined) return { kind: 'list', dlq };
  if (sub === 'replay') return { kind: 'replay', dlq, id };
  if (sub === 'drop' && id !== undefined) return { kind: 'drop', dlq, id };
  return undefined;
}

function run(store: QueueStore, action: Action, json: boolean, io: Output): number {
  switch (action.kind) {
    case 'stats':
      return stats(store, json, io);
    case 'list':
      return list(store.deadLetters(action.dlq), json, io);
    case 'replay': {
      const n = store.replay(action.dlq, action.id, Date.now());
      io.out(`replayed ${n} dead letter${n === 1 ? '' : 's'} from ${action.dlq}`);
      return n === 0 && action.id !== undefined ? EXIT.failure : EXIT.ok;
    }
    case 'drop': {
      const n = store.drop(action.dlq, action.id);
      io.out(`dropped ${n} dead letter${n === 1 ? '' : 's'} with id ${action.id} from ${action.dlq}`);
      return n === 0 ? EXIT.failure : EXIT.ok;
    }
  }
}

function stats(store: QueueStore, json: boolean, io: Output): number {
  const { groups, dead } = store.stats(Date.now());
  const topics = new Set([...groups.map((g) => g.topic), ...dead.keys()]);
  const rows = [...topics].sort().flatMap((topic) => {
    const forTopic = groups.filter((g) => g.topic === topic);
    const deadCount = dead.get(topic) ?? 0;
    if (forTopic.length === 0)
      return [{ topic, group: '-', ready: 0, retrying: 0, inFlight: 0, held: 0, dead: deadCount }];
    return forTopic.map((g) => ({ ...g, dead: deadCount }));
  });
  if (json) {
    io.out(JSON.stringify(rows, null, 2));
    return EXIT.ok;
  }
  if (rows.length === 0) {
    io.out('no topics yet');
    return EXIT.ok;
  }
  const header = ['TOPIC', 'GROUP', 'READY', 'RETRYING', 'IN FLIGHT', 'HELD', 'DEAD'];
  for (const line of table(
    header,
    rows.map((r) => [r.topic, r.group, r.ready, r.retrying, r.inFlight, r.held, r.dead]),
  ))
    io.out(line);
  return EXIT.ok;
}

function list(letters: DeadLetter[], json: boolean, io: Output): number {
  const shown = letters.map((l) => ({
    id: l.id,
    partitionKey: l.partitionKey,
    originalTopic: l.originalTopic,
    failedAt: new Date(l.failedAt).toISOString(),
    failureCount: l.failureCount,
    lastError: l.lastError,
    metadata: safeJson(l.metadata),
    payload: safeJson(l.payload),
  }));
  if (json) {
    io.out(JSON.stringify(shown, null, 2));
    return EXIT.ok;
  }
  if (shown.length === 0) {
    io.out('no dead letters');
    return EXIT.ok;
  }
  const rows = shown.map((l) => [l.id, l.partitionKey, l.failedAt, l.failureCount, oneLine(l.lastError)]);
  for (const line of table(['ID', 'PARTITION', 'FAILED AT', 'FAILURES', 'LAST ERROR'], rows)) io.out(line);
  return EXIT.ok;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function oneLine(s: string): string {
  const flat = s.replace(/\s+/g, ' ');
  return flat.length > 120 ? `${flat.slice(0, 117)}...` : flat;
}
