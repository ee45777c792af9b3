import { join } from 'node:path';
import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { tempDir } from '../../test/support/temp.ts';
import { waitFor } from '../../test/support/wait.ts';
import { type Db, openDatabase } from '../db/database.ts';
import { EventStore } from '../db/event-store.ts';
import { type HttpServer, listen } from '../http/server.ts';
import { createLogger } from '../logger.ts';
import { EventLog } from './event-log.ts';
import { EventsServer, parseCursor } from './events-server.ts';
import { NanoClock } from './nano-clock.ts';

const STATUS = 'sh.tangled.pipeline.status';
let env: { db: Db; log: EventLog; events: EventsServer; http: HttpServer; path: string; cleanup: () => void };
const sockets: WebSocket[] = [];

afterEach(async () => {
  for (const ws of sockets) ws.terminate();
  sockets.length = 0;
  if (env) await stop();
  env?.cleanup();
});

async function start(path?: string, pingIntervalMs = 30_000): Promise<void> {
  const t = path ? { dir: '', cleanup: () => {} } : tempDir();
  const file = path ?? join(t.dir, 'treadle.db');
  const db = openDatabase(file);
  const log = new EventLog(new EventStore(db));
  const events = new EventsServer(log, createLogger('silent'), { pingIntervalMs });
  const http = await listen(new Hono(), '127.0.0.1', 0, {
    '/events': (r, s, h) => events.handleUpgrade(r, s, h),
  });
  env = { db, log, events, http, path: file, cleanup: env?.path === file ? env.cleanup : t.cleanup };
}

async function stop(): Promise<void> {
  await env.events.close();
  await env.http.close(100);
  env.db.close();
}

interface Client {
  ws: WebSocket;
  frames: string[];
  pings: number;
}

async function connect(query = ''): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${env.http.port}/events${query}`);
  sockets.push(ws);
  const client: Client = { ws, frames: [], pings: 0 };
  ws.on('message', (data, isBinary) => {
    expect(isBinary).toBe(false);
    client.frames.push(data.toString());
  });
  ws.on('ping', () => {
    client.pings++;
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return client;
}

function appendStatuses(n: number, from = 0): bigint[] {
  const created: bigint[] = [];
  for (let i = from; i < from + n; i++) {
    created.push(
      env.log.append(STATUS, `rkey${String(i).padStart(5, '0')}`, {
        $type: '',
        workflow: 'ci.yml',
        status: 'pending',
        pipeline: 'at://did:web:knot.example/sh.tangled.pipeline/3m6abc',
        createdAt: '2025-11-27T18:05:02Z',
      }).created,
    );
  }
  return created;
}

const rkeys = (c: Client) => c.frames.map((f) => JSON.parse(f).rkey as string);

describe('/events', () => {
  it.each(['', '?cursor=0', '?cursor=abc', '?cursor=', '?cursor=99999999999999999999999'])(
    'with %j sends only events written after the connection',
    async (query) => {
      await start();
      appendStatuses(3);
      const c = await connect(query);
      appendStatuses(2, 3);
      // A sentinel after them: once it is here, anything old would have come before it.
      appendStatuses(1, 5);
      await waitFor(() => rkeys(c).includes('rkey00005'), 'the sentinel');
      expect(rkeys(c)).toEqual(['rkey00003', 'rkey00004', 'rkey00005']);
    },
  );

  it('backfills every event after the cursor, past 100, in order, then goes live', async () => {
    await start();
    const created = appendStatuses(250);
    const c = await connect(`?cursor=${created[9]}`);
    await waitFor(() => c.frames.length === 240, 'the backfill');
    appendStatuses(1, 250);
    await waitFor(() => c.frames.length === 241, 'the live frame');
    expect(rkeys(c)).toEqual(Array.from({ length: 241 }, (_, i) => `rkey${String(i + 10).padStart(5, '0')}`));
  });

  it('backfills from the beginning for a negative cursor', async () => {
    await start();
    appendStatuses(5);
    const c = await connect('?cursor=-1');
    await waitFor(() => c.frames.length === 5, 'all frames');
  });

  it('sends one JSON object per text frame with rkey, nsid, event and the exact ns created', async () => {
    await start();
    const created = appendStatuses(3);
    const c = await connect('?cursor=-1');
    await waitFor(() => c.frames.length === 3, 'frames');
    c.frames.forEach((text, i) => {
      const frame = JSON.parse(text);
      expect(Object.keys(frame)).toEqual(['created', 'event', 'nsid', 'rkey']);
      expect(typeof frame.rkey).toBe('string');
      expect(frame.nsid).toBe(STATUS);
      expect(frame.event).toMatchObject({ $type: '', status: 'pending', workflow: 'ci.yml' });
      // Nanoseconds overflow JS numbers: the digits on the wire are the stored BigInt's.
      expect(text).toContain(`"created":${created[i]},`);
    });
    expect(new Set(created).size).toBe(3);
    expect([...created].sort((a, b) => (a < b ? -1 : 1))).toEqual(created);
    // The record's keys are sorted, as stock's re-marshalled frames are.
    expect(Object.keys(JSON.parse(c.frames[0]!).event)).toEqual([
      '$type',
      'createdAt',
      'pipeline',
      'status',
      'workflow',
    ]);
  });

  it('replays from a cursor after a restart, and keeps created increasing', async () => {
    await start();
    const before = appendStatuses(4);
    const path = env.path;
    await stop();
    await start(path);
    const after = appendStatuses(2, 4);
    expect(after[0]! > before[3]!).toBe(true);
    const c = await connect(`?cursor=${before[1]}`);
    await waitFor(() => c.frames.length === 4, 'the backfill');
    expect(rkeys(c)).toEqual(['rkey00002', 'rkey00003', 'rkey00004', 'rkey00005']);
  });

  it('writes a repeated (nsid, rkey) once and returns the stored event', async () => {
    await start();
    const first = env.log.append(STATUS, 'same', { status: 'pending' });
    const again = env.log.append(STATUS, 'same', { status: 'running' });
    expect(again.created).toBe(first.created);
    expect(again.event).toBe('{"status":"pending"}');
    const c = await connect('?cursor=-1');
    env.log.append(STATUS, 'sentinel', { status: 'success' });
    await waitFor(() => c.frames.length >= 2, 'the sentinel');
    expect(rkeys(c)).toEqual(['same', 'sentinel']);
  });

  it('fans live events out to every client', async () => {
    await start();
    const clients = await Promise.all([connect(), connect(), connect()]);
    appendStatuses(20);
    await waitFor(() => clients.every((c) => c.frames.length === 20), 'all clients');
    for (const c of clients) expect(rkeys(c)).toEqual(rkeys(clients[0]!));
  });

  it('pings a silent connection', async () => {
    await start(undefined, 100);
    const c = await connect();
    await waitFor(() => c.pings >= 2, 'pings', 3000);
  });

  it('closes clients with 1001 when the server stops', async () => {
    await start();
    const c = await connect();
    const closed = new Promise<number>((resolve) => c.ws.once('close', resolve));
    await env.events.close();
    expect(await closed).toBe(1001);
  });

  it('answers 404 to an upgrade on another path', async () => {
    await start();
    const ws = new WebSocket(`ws://127.0.0.1:${env.http.port}/nope`);
    ws.on('error', () => {}); // the failed handshake is the point
    sockets.push(ws);
    const status = await new Promise<number>((resolve) =>
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)),
    );
    expect(status).toBe(404);
  });
});

describe('parseCursor', () => {
  it('reads ns cursors as BigInt without losing digits', () => {
    expect(parseCursor('1764266702123456789', 5n)).toBe(1764266702123456789n);
    expect(parseCursor(null, 5n)).toBe(5n);
    expect(parseCursor('0', 5n)).toBe(5n);
    expect(parseCursor('-42', 5n)).toBe(-1n);
    expect(parseCursor('1e9', 5n)).toBe(5n);
  });
});

describe('NanoClock', () => {
  it('never repeats or goes back, even when the wall clock does', () => {
    const walls = [100n, 100n, 90n, 200n, 150n];
    const clock = new NanoClock(95n, () => walls.shift() ?? 0n);
    expect([clock.next(), clock.next(), clock.next(), clock.next(), clock.next()]).toEqual([
      100n,
      101n,
      102n,
      200n,
      201n,
    ]);
  });

  it('hands out timestamps above any "now" it reported', () => {
    const walls = [500n, 400n];
    const clock = new NanoClock(0n, () => walls.shift() ?? 0n);
    expect(clock.now()).toBe(500n);
    expect(clock.next()).toBe(501n);
  });

  it('starts above the newest stored event', () => {
    const clock = new NanoClock(1000n, () => 10n);
    expect(clock.next()).toBe(1001n);
  });
});
