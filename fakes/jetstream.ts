/**
 * A fake Jetstream (spindle protocol §3.1): `/subscribe?wantedCollections=…&cursor=<µs>`;
 * commit events `{did, time_us, kind: "commit", commit: {rev, operation, collection, rkey,
 * record?, cid?}}`, filtered by the wanted collections; with a cursor, events from that time
 * on are replayed before live ones, as the real service does within its retention (events
 * older than `retentionUs` are forgotten, and a cursor before them starts at the oldest kept);
 * `identity` and `account` events go to every subscriber, whatever collections it wants.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import type { FakePds } from './pds.ts';

interface StoredEvent {
  timeUs: number;
  collection: string;
  text: string;
}

interface Sub {
  ws: WebSocket;
  wanted: Set<string>;
}

export class FakeJetstream {
  /** The request URL of every connection, in order. */
  readonly connections: string[] = [];
  private readonly events: StoredEvent[] = [];
  private readonly subs = new Set<Sub>();
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private lastUs = 0;
  private rev = 0;
  /** Where the records live: a commit seen on Jetstream is in its author's PDS too. */
  pds: FakePds | undefined;
  /** How long events are kept, in µs (the real service keeps about a day). */
  retentionUs = Number.POSITIVE_INFINITY;

  private constructor(server: Server) {
    this.server = server;
    this.wss = new WebSocketServer({ server, path: '/subscribe' });
    this.wss.on('connection', (ws, req) => {
      this.connections.push(req.url ?? '');
      const q = new URL(req.url ?? '/', 'http://x').searchParams;
      const sub = { ws, wanted: new Set(q.getAll('wantedCollections')) };
      const cursor = q.get('cursor');
      if (cursor !== null && /^\d+$/.test(cursor)) {
        this.forget();
        for (const e of this.events) if (e.timeUs >= Number(cursor) && this.wants(sub, e)) ws.send(e.text);
      }
      this.subs.add(sub);
      ws.on('close', () => this.subs.delete(sub));
    });
  }

  static async start(): Promise<FakeJetstream> {
    const server = createServer((_req, res) => res.writeHead(404).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new FakeJetstream(server);
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.server.address() as AddressInfo).port}/subscribe`;
  }

  get connected(): number {
    return this.subs.size;
  }

  /** Publishes a commit event; returns its time_us. */
  commit(
    did: string,
    collection: string,
    rkey: string,
    operation: 'create' | 'update' | 'delete',
    record?: unknown,
  ): number {
    const timeUs = Math.max(Date.now() * 1000, this.lastUs + 1);
    this.lastUs = timeUs;
    const commit: Record<string, unknown> = { rev: `rev${++this.rev}`, operation, collection, rkey };
    if (operation !== 'delete') {
      commit.record = record;
      commit.cid = `bafy${this.rev}`;
    }
    if (operation === 'delete') this.pds?.deleteRecord(did, collection, rkey);
    else this.pds?.putRecord(did, collection, rkey, record);
    const text = JSON.stringify({ did, time_us: timeUs, kind: 'commit', commit });
    this.push({ timeUs, collection, text });
    return timeUs;
  }

  /** An identity event (a handle or DID document change): sent to every subscriber. */
  identity(did: string): number {
    return this.other(did, 'identity', {
      identity: { did, handle: 'someone.test', seq: ++this.rev, time: new Date().toISOString() },
    });
  }

  /** An account event (activated or deactivated): sent to every subscriber. */
  account(did: string, active: boolean): number {
    return this.other(did, 'account', {
      account: { did, active, seq: ++this.rev, time: new Date().toISOString() },
    });
  }

  private other(did: string, kind: string, body: Record<string, unknown>): number {
    const timeUs = Math.max(Date.now() * 1000, this.lastUs + 1);
    this.lastUs = timeUs;
    this.push({ timeUs, collection: '', text: JSON.stringify({ did, time_us: timeUs, kind, ...body }) });
    return timeUs;
  }

  /** Sends a raw text frame to every subscriber (malformed-input tests). */
  sendRaw(text: string): void {
    for (const s of this.subs) s.ws.send(text);
  }

  dropConnections(): void {
    for (const s of this.subs) s.ws.terminate();
  }

  async close(): Promise<void> {
    for (const s of this.subs) s.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private push(e: StoredEvent): void {
    this.events.push(e);
    for (const s of this.subs) if (this.wants(s, e)) s.ws.send(e.text);
  }

  private wants(sub: Sub, e: StoredEvent): boolean {
    return e.collection === '' || sub.wanted.size === 0 || sub.wanted.has(e.collection);
  }

  private forget(): void {
    const oldest = Date.now() * 1000 - this.retentionUs;
    while (this.events.length > 0 && this.events[0]!.timeUs < oldest) this.events.shift();
  }
}
