/**
 * Hook delivery (spec §6.7) as Standard Webhooks: every event on the `hook` topic is fanned out
 * to each configured sink whose `events` globs match its type, one `hook.deliver` message per
 * (event, sink), partitioned by sink so a sink that is down delays only itself. A delivery is a
 * POST of the event JSON with `webhook-id` (the event id), `webhook-timestamp` and
 * `webhook-signature` (v1, HMAC-SHA256 with the sink's secret); any non-2xx answer or transport
 * error is retried with the queue's backoff, then dead-lettered and logged. Hooks never change
 * greenness state.
 */
import picomatch from 'picomatch';
import { Webhook } from 'standardwebhooks';
import { RetryableError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { postPublic } from '../net/public-fetch.ts';
import type { Queue } from '../queue/index.ts';
import type { HookSink } from './config.ts';
import type { HookEvent } from './recorder.ts';

export const DELIVER_TOPIC = 'hook.deliver';

export interface DeliverMessage {
  sink: number;
  event: HookEvent;
}

/** A sink secret as Standard Webhooks takes it: `whsec_<base64>` as such, anything else as raw bytes. */
export function signerFor(secret: string): Webhook {
  return secret.startsWith('whsec_') ? new Webhook(secret) : new Webhook(secret, { format: 'raw' });
}

export class HookDelivery {
  private readonly sinks: readonly HookSink[];
  private readonly queue: Queue;
  private readonly log: Logger;
  private readonly dev: boolean;
  private readonly signers: Webhook[];

  constructor(o: { sinks: readonly HookSink[]; queue: Queue; log: Logger; dev: boolean }) {
    this.sinks = o.sinks;
    this.queue = o.queue;
    this.log = o.log;
    this.dev = o.dev;
    this.signers = o.sinks.map((s) => signerFor(s.secret));
  }

  /** `hook` → one `hook.deliver` per matching sink. */
  fanOut(event: HookEvent): void {
    this.sinks.forEach((sink, i) => {
      if (!sink.events.some((g) => picomatch.isMatch(event.type, g))) return;
      this.queue.publish<DeliverMessage>(DELIVER_TOPIC, `sink:${i}`, `${event.id}#${i}`, { sink: i, event });
    });
  }

  async deliver(m: DeliverMessage): Promise<void> {
    const sink = this.sinks[m.sink];
    if (!sink) {
      this.log.warn({ sink: m.sink, id: m.event.id }, 'hook for a sink no longer configured dropped');
      return;
    }
    const body = JSON.stringify(m.event);
    const now = new Date();
    const headers = {
      'webhook-id': m.event.id,
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
      'webhook-signature': this.signers[m.sink]!.sign(m.event.id, now, body),
    };
    const status = await postPublic(sink.url, body, headers, { dev: this.dev, what: `hook ${m.event.type}` });
    if (status < 200 || status >= 300)
      throw new RetryableError(`hook sink ${sink.url} answered ${status} for ${m.event.id}`);
  }

  /** A delivery that kept failing: logged whole, so nothing is lost silently. */
  deadLetter(m: DeliverMessage, lastError: string): void {
    this.log.error(
      { sink: this.sinks[m.sink]?.url, event: m.event, lastError },
      'hook delivery dead-lettered: the sink stayed down',
    );
  }
}
