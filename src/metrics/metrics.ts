/**
 * The daemon's Prometheus metrics (prom-client), one registry per daemon. Counters and
 * histograms are incremented where things happen; gauges of state (connections, queue depth,
 * stream clients) are read when Prometheus scrapes, through collectors modules register.
 *
 * Label values are always from small fixed sets (a status, a runner name, a topic, an outcome,
 * a reason code): never a commit, an rkey, a DID, a knot host or a repo, so the number of series
 * does not grow with the repos served.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Called at scrape time to set gauges from current state. */
export type Collector = () => void;

export class Metrics {
  readonly registry = new Registry();
  private readonly collectors: Collector[] = [];
  private readonly totals = new Map<string, number>();

  readonly streamConnections = this.gauge(
    'treadle_stream_connections',
    'Event-stream connections by source (knot, jetstream) and state (connected, connecting, backoff)',
    ['source', 'state'],
  );
  readonly streamReconnects = this.counter(
    'treadle_stream_reconnects_total',
    'Event-stream connections opened again after one ended, by source',
    ['source'],
  );
  readonly pipelinesAccepted = this.counter(
    'treadle_pipelines_accepted_total',
    'Pipelines started, by trigger kind (push, pull_request, manual)',
    ['trigger'],
  );
  readonly pipelinesRefused = this.counter(
    'treadle_pipelines_refused_total',
    'Pipeline triggers refused, by reason code',
    ['reason'],
  );
  readonly workflowStatuses = this.counter(
    'treadle_workflow_statuses_total',
    'Workflow statuses written, by runner and status',
    ['runner', 'status'],
  );
  readonly triggerToRunning = this.histogram(
    'treadle_workflow_trigger_to_running_seconds',
    'From a workflow pending to its running status (whole seconds, as the statuses record them)',
    [],
    [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
  );
  readonly statusWrite = this.histogram(
    'treadle_status_write_seconds',
    'Writing one status: the workflow row, the /events frame and the workflow.status message',
    [],
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
  );
  readonly queueMessages = this.gauge(
    'treadle_queue_messages',
    'Queue deliveries by topic, consumer group and state (ready, retrying, in_flight, held)',
    ['topic', 'group', 'state'],
  );
  readonly queueDead = this.gauge('treadle_queue_dead', 'Dead letters by original topic', ['topic']);
  readonly runnerApiCalls = this.counter(
    'treadle_runner_api_calls_total',
    'Calls to a runner’s API, by runner and outcome (ok, error, rate_limited)',
    ['runner', 'outcome'],
  );
  readonly runnerRateLimitWait = this.counter(
    'treadle_runner_rate_limit_wait_seconds_total',
    'Time spent waiting for a runner’s API budget',
    ['runner'],
  );
  readonly streamClients = this.gauge('treadle_stream_clients', 'WebSocket clients of /events and /logs', [
    'endpoint',
  ]);
  readonly authRefusals = this.counter(
    'treadle_service_auth_refusals_total',
    'Service-auth tokens refused, by reason code',
    ['reason'],
  );
  readonly greennessFacts = this.counter(
    'treadle_greenness_facts_total',
    'Whole-repo greenness facts recorded, by verdict (green, not_green)',
    ['verdict'],
  );
  readonly greennessTransitions = this.counter(
    'treadle_greenness_transitions_total',
    'Greenness events published, by type',
    ['type'],
  );
  readonly landingResults = this.counter(
    'treadle_landing_results_total',
    'Landing results published, by kind (check, merge) and outcome',
    ['kind', 'outcome'],
  );

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /**
   * Brings a counter up to a running total kept elsewhere (a stream's reconnects): increments
   * by what the total grew since the last call.
   */
  syncCounter<L extends string>(
    counter: Counter<L>,
    labels: Partial<Record<L, string>>,
    total: number,
  ): void {
    const key = `${(counter as unknown as { name: string }).name}${JSON.stringify(labels)}`;
    const last = this.totals.get(key) ?? 0;
    if (total > last) counter.inc(labels, total - last);
    this.totals.set(key, total);
  }

  /** Adds a collector run at every scrape, before the registry is read. */
  collect(collector: Collector): void {
    this.collectors.push(collector);
  }

  /** The exposition text. */
  async scrape(): Promise<string> {
    for (const c of this.collectors) c();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private counter<L extends string>(name: string, help: string, labelNames: L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  private gauge<L extends string>(name: string, help: string, labelNames: L[]): Gauge<L> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  private histogram<L extends string>(
    name: string,
    help: string,
    labelNames: L[],
    buckets: number[],
  ): Histogram<L> {
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }
}
