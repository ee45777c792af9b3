/** SQL of landing (migration 0010): the ledger of merges that pushed, and the results published. */
import type { Statement } from 'better-sqlite3';
import type { Db } from './database.ts';

const LEDGER_DAYS = 30;

export interface StoredResult {
  requestId: string;
  kind: 'check' | 'merge';
  target: string;
  outcome: 'SUCCEEDED' | 'FAILED';
  result: string;
  finishedAt: number;
}

export class LandingStore {
  private readonly s: Record<string, Statement>;

  constructor(db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      ledgered: p('SELECT result FROM land_ledger WHERE request_id = ?'),
      ledger: p('INSERT OR IGNORE INTO land_ledger (request_id, result, created_at) VALUES (?, ?, ?)'),
      prune: p('DELETE FROM land_ledger WHERE created_at < ?'),
      saveResult:
        p(`INSERT OR IGNORE INTO land_results (request_id, kind, target, outcome, result, finished_at)
                     VALUES (@requestId, @kind, @target, @outcome, @result, @finishedAt)`),
      result: p(`SELECT request_id AS requestId, kind, target, outcome, result, finished_at AS finishedAt
                 FROM land_results WHERE request_id = ? ORDER BY finished_at DESC LIMIT 1`),
      pending: p(`SELECT m.topic, m.payload, max(d.in_flight) AS inFlight FROM queue_messages m
                  JOIN queue_delivery d ON d.topic = m.topic AND d.partition_key = m.partition_key
                   AND d.msg_offset = m."offset" AND d.consumer_group IN ('land-check', 'land-merge')
                  WHERE m.topic IN ('land.check', 'land.merge') AND m.id = ? GROUP BY m."offset" LIMIT 1`),
      latest: p(`SELECT request_id AS requestId, kind, target, outcome, result, finished_at AS finishedAt
                 FROM land_results WHERE target = ? ORDER BY finished_at DESC LIMIT ?`),
    };
  }

  /** The result a merge that pushed was answered with, if it is in the ledger. */
  ledgered(requestId: string): string | undefined {
    return (this.s.ledgered!.get(requestId) as { result: string } | undefined)?.result;
  }

  ledger(requestId: string, result: string, now: number): void {
    this.s.ledger!.run(requestId, result, now);
  }

  /** Drops ledger entries older than 30 days; returns how many. */
  prune(now: number): number {
    return this.s.prune!.run(now - LEDGER_DAYS * 86_400_000).changes;
  }

  saveResult(r: StoredResult): void {
    this.s.saveResult!.run(r);
  }

  result(requestId: string): StoredResult | undefined {
    return this.s.result!.get(requestId) as StoredResult | undefined;
  }

  /** A request still on its inbound topic: queued, or running (in flight), with its payload. */
  pending(requestId: string): { topic: string; payload: string; inFlight: number } | undefined {
    return this.s.pending!.get(requestId) as { topic: string; payload: string; inFlight: number } | undefined;
  }

  latest(target: string, limit: number): StoredResult[] {
    return this.s.latest!.all(target, limit) as StoredResult[];
  }
}
