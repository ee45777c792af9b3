/** `/events`: the appview-facing WebSocket over the event log. */
import type { AppContext } from '../context.ts';
import { subsystemLogger } from '../logger.ts';
import type { Module } from '../module.ts';
import { EventsServer } from './events-server.ts';

export function createEvents(ctx: AppContext, options: { pingIntervalMs: number }): Module {
  const server = new EventsServer(ctx.events, subsystemLogger(ctx.log, 'events'), options);
  ctx.metrics.collect(() => ctx.metrics.streamClients.set({ endpoint: 'events' }, server.connections));
  return {
    name: 'events',
    upgrades: { '/events': (req, socket, head) => server.handleUpgrade(req, socket, head) },
    stop: () => server.close(),
  };
}
