/**
 * `/metrics`: the Prometheus exposition of the daemon's registry (`ctx.metrics`). On the main
 * listener it needs `TREADLE_METRICS_TOKEN` when that is set; `TREADLE_METRICS_LISTEN` adds a
 * private listener that serves only `/metrics`, without a token, for a scraper on a private
 * network (and the main listener then serves it only with the token). The queue's depth,
 * in-flight, held and dead counts are read from the database at each scrape.
 */
import { Hono } from 'hono';
import type { AppContext } from '../context.ts';
import { bearerToken, sameSecret } from '../http/secret.ts';
import { type HttpServer, listen } from '../http/server.ts';
import { subsystemLogger } from '../logger.ts';
import type { Module } from '../module.ts';

export function createMetricsModule(ctx: AppContext): Module {
  const { metrics, queue, config } = ctx;
  const log = subsystemLogger(ctx.log, 'metrics');
  const seen = new Set<string>();
  metrics.collect(() => {
    const { groups, dead } = queue.store.stats(Date.now());
    metrics.queueMessages.reset();
    for (const g of groups) {
      const labels = { topic: g.topic, group: g.group };
      metrics.queueMessages.set({ ...labels, state: 'ready' }, g.ready);
      metrics.queueMessages.set({ ...labels, state: 'retrying' }, g.retrying);
      metrics.queueMessages.set({ ...labels, state: 'in_flight' }, g.inFlight);
      metrics.queueMessages.set({ ...labels, state: 'held' }, g.held);
    }
    // A topic that had dead letters keeps its series (at 0 once they are replayed or dropped).
    for (const topic of dead.keys()) seen.add(topic);
    for (const topic of seen) metrics.queueDead.set({ topic }, dead.get(topic) ?? 0);
  });
  const exposition = async () =>
    new Response(await metrics.scrape(), { headers: { 'content-type': metrics.contentType } });
  let server: HttpServer | undefined;
  return {
    name: 'metrics',
    routes: (app) => {
      if (config.metricsListen && !config.metricsToken) return;
      app.get('/metrics', async (c) => {
        if (config.metricsToken) {
          const token = bearerToken(c.req.header('authorization'));
          if (!token || !sameSecret(token, config.metricsToken)) {
            c.header('WWW-Authenticate', 'Bearer realm="treadle metrics"');
            return c.json(
              { error: 'AuthRequired', message: 'Authorization: Bearer <TREADLE_METRICS_TOKEN> is required' },
              401,
            );
          }
        }
        return exposition();
      });
    },
    async start() {
      if (!config.metricsListen) return;
      const app = new Hono();
      app.get('/metrics', () => exposition());
      app.notFound((c) => c.text('404 page not found\n', 404));
      const { host, port } = config.metricsListen;
      server = await listen(app, host, port, {}, 'TREADLE_METRICS_LISTEN');
      log.info({ host, port: server.port }, 'metrics listening');
    },
    async stop() {
      await server?.close(1000);
    },
  };
}
