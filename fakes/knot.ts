/**
 * A fake knot event stream, faithful to spindle protocol §4.3: `/events?cursor=<ns>`; a
 * missing, invalid or 0 cursor means "now" (no backfill); a negative one the first 100 rows;
 * otherwise rows with `created > cursor`, at most 100 per notification; a ping after silence.
 * Envelopes carry `created` like current knots, or not (`legacy: true`) like older ones.
 * It also serves real git over smart HTTP at `/<repoDid>` (see GitRepos) and
 * `sh.tangled.repo.getDefaultBranch`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import { GitRepos } from './git-repos.ts';

interface Row {
  created: bigint;
  nsid: string;
  rkey: string;
  event: unknown;
}

interface Sub {
  ws: WebSocket;
  cursor: bigint;
}

export class FakeKnot {
  readonly rows: Row[] = [];
  /** The request URL (path and query) of every connection, in order. */
  readonly connections: string[] = [];
  readonly git = new GitRepos();
  /** Repo DID → default branch, for `sh.tangled.repo.getDefaultBranch`. */
  readonly defaultBranches = new Map<string, string>();
  /**
   * What `sh.tangled.knot.version` reports: newer knots list capabilities (e.g. `knot-acl`,
   * `repo-did-input`); undefined answers without the field, as older knots do.
   */
  capabilities: string[] | undefined;
  /** Requests to `sh.tangled.knot.version`. */
  versionRequests = 0;
  private readonly subs = new Set<Sub>();
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly legacy: boolean;
  private lastCreated = 0n;
  private pinger: NodeJS.Timeout;

  private constructor(server: Server, legacy: boolean, pingMs: number) {
    this.server = server;
    this.legacy = legacy;
    server.on('request', (req, res) => {
      if (this.git.handle(req, res)) return;
      const url = new URL(req.url ?? '/', 'http://knot');
      if (url.pathname === '/xrpc/sh.tangled.knot.version') {
        this.versionRequests++;
        const body = {
          version: 'v1.15.0-fake',
          ...(this.capabilities ? { capabilities: this.capabilities } : {}),
        };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        return;
      }
      if (url.pathname === '/xrpc/sh.tangled.repo.getDefaultBranch') {
        const name = this.defaultBranches.get(url.searchParams.get('repo') ?? '');
        if (name) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name }));
        else res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"RepoNotFound"}');
        return;
      }
      res.writeHead(404).end();
    });
    this.wss = new WebSocketServer({ server, path: '/events' });
    this.wss.on('connection', (ws, req) => {
      this.connections.push(req.url ?? '');
      const raw = new URL(req.url ?? '/', 'http://x').searchParams.get('cursor');
      let cursor = raw !== null && /^-?\d+$/.test(raw) ? BigInt(raw) : 0n;
      if (cursor === 0n) cursor = this.now();
      const sub = { ws, cursor: cursor < 0n ? -1n : cursor };
      this.subs.add(sub);
      ws.on('close', () => this.subs.delete(sub));
      this.flush(sub);
    });
    this.pinger = setInterval(() => {
      for (const s of this.subs) s.ws.ping();
    }, pingMs);
  }

  static async start(
    options: {
      legacy?: boolean;
      pingMs?: number;
      /** The knot's clock runs this far from ours (legacy cursors are compared against it). */
      clockSkewMs?: number;
      /** Close 1013 instead of sending a backlog longer than this (after sending this many). */
      overloadAt?: number;
    } = {},
  ): Promise<FakeKnot> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const knot = new FakeKnot(server, options.legacy ?? false, options.pingMs ?? 30_000);
    knot.clockSkewMs = options.clockSkewMs ?? 0;
    knot.overloadAt = options.overloadAt;
    return knot;
  }

  private clockSkewMs = 0;
  private overloadAt: number | undefined;

  /** `127.0.0.1:<port>`: the knot's host name as repo records carry it. */
  get host(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get connected(): number {
    return this.subs.size;
  }

  /** Stores an event and notifies subscribers; returns its `created`. */
  emit(nsid: string, rkey: string, event: unknown): bigint {
    const created = this.now() + 1n;
    this.lastCreated = created;
    this.rows.push({ created, nsid, rkey, event });
    for (const s of this.subs) this.flush(s);
    return created;
  }

  /** Sends a raw text frame to every subscriber (for malformed-input tests). */
  sendRaw(text: string): void {
    for (const s of this.subs) s.ws.send(text);
  }

  /** Sends a binary frame to every subscriber (knots send text only). */
  sendBinary(data: Buffer): void {
    for (const s of this.subs) s.ws.send(data, { binary: true });
  }

  /** Closes every connection with `code`, e.g. 1013 "try again later" from a busy knot. */
  closeConnections(code: number, reason = ''): void {
    for (const s of this.subs) s.ws.close(code, reason);
  }

  /** Drops every connection abruptly, as a knot restart would. */
  dropConnections(): void {
    for (const s of this.subs) s.ws.terminate();
  }

  async close(): Promise<void> {
    clearInterval(this.pinger);
    for (const s of this.subs) s.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.git.remove();
  }

  private now(): bigint {
    const wall = BigInt(Date.now() + this.clockSkewMs) * 1_000_000n;
    return wall > this.lastCreated ? wall : this.lastCreated;
  }

  /**
   * Sends the rows after the subscriber's cursor. A legacy knot's GetEvents sends at most 100 per
   * notification; a 2026 knot drains its whole backlog, or, when it has more
   * than `overloadAt` to send, sends that many and closes 1013 (try again later).
   */
  private flush(sub: Sub): void {
    const pending = this.rows.filter((r) => r.created > sub.cursor);
    const overloaded = this.overloadAt !== undefined && pending.length > this.overloadAt;
    const batch = this.legacy
      ? pending.slice(0, 100)
      : pending.slice(0, overloaded ? this.overloadAt : undefined);
    for (const r of batch) {
      const envelope = this.legacy
        ? `{"event":${JSON.stringify(r.event)},"nsid":${JSON.stringify(r.nsid)},"rkey":${JSON.stringify(r.rkey)}}`
        : `{"created":${r.created},"event":${JSON.stringify(r.event)},"nsid":${JSON.stringify(r.nsid)},"rkey":${JSON.stringify(r.rkey)}}`;
      sub.ws.send(envelope);
      sub.cursor = r.created;
    }
    if (overloaded) sub.ws.close(1013, 'try again later');
  }
}
