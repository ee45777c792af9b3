/**
 * The shape every capability has (knots, discovery, pipelines, logs, ci, runs, secrets, the
 * runners): what it contributes to the daemon. The composition root lists modules; the service
 * subscribes their consumers, mounts their routes and upgrades, starts them in order and stops
 * them in reverse. Capabilities talk through durable queue topics or through the typed services
 * a module's `create` returns, never through callbacks slipped into each other's constructors.
 */
import type { Hono } from 'hono';
import type { UpgradeRoutes } from './http/server.ts';
import type { ConsumerOptions, Handler } from './queue/index.ts';

export interface ConsumerSpec {
  topic: string;
  group: string;
  // biome-ignore lint/suspicious/noExplicitAny: a list holds consumers of different payloads
  handle: Handler<any>;
  options?: ConsumerOptions;
}

/** A typed consumer entry; the payload type is checked where it is declared. */
export function consumer<T>(
  topic: string,
  group: string,
  handle: Handler<T>,
  options?: ConsumerOptions,
): ConsumerSpec {
  return { topic, group, handle, options };
}

export interface Module {
  readonly name: string;
  /** Queue consumers; subscribed before any module starts, so nothing published is missed. */
  readonly consumers?: readonly ConsumerSpec[];
  /** XRPC methods under /xrpc/. */
  xrpc?(app: Hono): void;
  /** Plain HTTP routes. */
  routes?(app: Hono): void;
  /** WebSocket upgrade routes by exact path, or by prefix when the key ends with `/`. */
  readonly upgrades?: UpgradeRoutes;
  /**
   * For `/readyz`: each check this module owns, with `undefined` when it is fine or what is
   * wrong, in a sentence an operator can act on.
   */
  readiness?(): Record<string, string | undefined>;
  /** Called once the HTTP server listens, in list order. */
  start?(): Promise<void> | void;
  /** Called on shutdown, in reverse list order, before the queue drains. */
  stop?(): Promise<void> | void;
}
