export { DLQ_SUFFIX } from '../db/queue-store.ts';
export { backoffMs } from './backoff.ts';
export type { Consumer } from './consumer.ts';
export { QUEUE_DEFAULTS, Queue } from './queue.ts';
export type {
  ConsumerOptions,
  Delivery,
  Handler,
  Metadata,
  PublishOptions,
  PublishRequest,
  PublishResult,
  QueueMessage,
  RetryPolicy,
} from './types.ts';
