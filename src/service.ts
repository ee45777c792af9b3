/**
 * The daemon's lifecycle: create (config → context), start (queue workers, HTTP), stop
 * (drain within the shutdown bound, close sockets and the database).
 */
import type { Config } from './config.ts';
import { type AppContext, createContext } from './context.ts';
import { createHttpApp, type Health } from './http/app.ts';
import { type HttpServer, listen } from './http/server.ts';
import type { Logger } from './logger.ts';
import { subsystemLogger } from './logger.ts';
import type { Module } from './module.ts';
import { createSpindle, type SpindleOptions } from './spindle.ts';

const LOCK_HEARTBEAT_MS = 5000;

export class Service {
  readonly ctx: AppContext;
  private http: HttpServer | undefined;
  readonly modules: readonly Module[];
  private readonly shutdownSignal: AbortController;
  private health: Health = 'starting';
  private heartbeat: NodeJS.Timeout | undefined;
  /** When the instance-lock row was last written (the database's proof of writability). */
  private lastWriteAt = 0;
  private lastWriteError: string | undefined;
  private stopping: Promise<void> | undefined;
  private readonly onFatal: (reason: string) => void;

  private constructor(
    ctx: AppContext,
    shutdown: AbortController,
    onFatal: (reason: string) => void,
    options: SpindleOptions,
  ) {
    this.ctx = ctx;
    this.shutdownSignal = shutdown;
    this.onFatal = onFatal;
    try {
      this.modules = createSpindle(ctx, options);
      // Subscribed before anything starts, so every message published from now on is kept.
      for (const m of this.modules)
        for (const c of m.consumers ?? []) ctx.queue.consume(c.topic, c.group, c.handle, c.options);
    } catch (err) {
      ctx.lock.release();
      ctx.db.close();
      throw err;
    }
  }

  /** Opens storage and takes the instance lock; throws ConfigError or InstanceLockedError. */
  static create(
    config: Config,
    log: Logger,
    onFatal: (reason: string) => void = () => {},
    options: SpindleOptions = {},
  ): Service {
    const shutdown = new AbortController();
    return new Service(createContext(config, log, shutdown.signal), shutdown, onFatal, options);
  }

  get port(): number | undefined {
    return this.http?.port;
  }

  async start(): Promise<void> {
    const { ctx } = this;
    ctx.queue.recoverAbandoned();
    ctx.queue.start();
    this.lastWriteAt = Date.now();
    this.heartbeat = setInterval(() => this.beat(), LOCK_HEARTBEAT_MS);
    this.heartbeat.unref();
    const app = createHttpApp({
      log: subsystemLogger(ctx.log, 'http'),
      hostname: ctx.config.hostname,
      owner: ctx.config.owner,
      health: () => this.health,
      readiness: () => this.readiness(),
      xrpcMethods: (app) => {
        for (const m of this.modules) m.xrpc?.(app);
      },
      routes: (app) => {
        for (const m of this.modules) m.routes?.(app);
      },
    });
    const upgrades = Object.assign({}, ...this.modules.map((m) => m.upgrades ?? {}));
    this.http = await listen(app, ctx.config.listen.host, ctx.config.listen.port, upgrades);
    for (const m of this.modules) await m.start?.();
    this.health = 'ready';
    ctx.log.info(
      {
        host: ctx.config.listen.host,
        port: this.http.port,
        hostname: ctx.config.hostname,
        db: ctx.config.db,
      },
      'listening',
    );
  }

  /** Idempotent. Resolves once every loop has unwound and the database is closed. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const { ctx } = this;
    const timeoutMs = ctx.config.shutdownTimeoutMs;
    const started = Date.now();
    this.health = 'draining';
    ctx.log.info({ timeoutMs }, 'shutting down');
    clearInterval(this.heartbeat);
    this.shutdownSignal.abort();
    for (const m of [...this.modules].reverse()) await m.stop?.();
    await Promise.all([this.http?.close(timeoutMs), ctx.queue.stop(timeoutMs)]);
    ctx.lock.release();
    ctx.db.close();
    ctx.log.info({ tookMs: Date.now() - started }, 'stopped');
  }

  private beat(): void {
    try {
      if (!this.ctx.lock.heartbeat()) this.onFatal('another treadle took over the database lock');
      this.lastWriteAt = Date.now();
      this.lastWriteError = undefined;
    } catch (err) {
      this.lastWriteError = (err as Error).message;
      this.ctx.log.warn({ err }, 'instance lock heartbeat failed');
    }
  }

  /**
   * `/readyz`: what is not ready, by check (empty when everything is). The database is
   * writable when the lock heartbeat wrote within three beats; the queue's workers run; each
   * module reports its own (Jetstream connected or inside its backoff).
   */
  readiness(now = Date.now()): Record<string, string> {
    const problems: Record<string, string> = {};
    if (this.health !== 'ready') problems.service = this.health;
    const age = now - this.lastWriteAt;
    if (this.lastWriteError) problems.database = `not writable: ${this.lastWriteError}`;
    else if (age > 3 * LOCK_HEARTBEAT_MS)
      problems.database = `no successful write for ${Math.round(age / 1000)} s`;
    if (!this.ctx.queue.running) problems.queue = 'workers are not running';
    for (const m of this.modules)
      for (const [check, problem] of Object.entries(m.readiness?.() ?? {}))
        if (problem !== undefined) problems[check] = problem;
    return problems;
  }
}
