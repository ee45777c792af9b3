export type Metadata = Record<string, string>;

export interface QueueMessage<T = unknown> {
  topic: string;
  partitionKey: string;
  id: string;
  payload: T;
  metadata: Metadata;
  offset: number;
  publishedAt: number;
}

export interface Delivery {
  /** 1 for the first delivery, and again 1 for the first delivery after a hold. */
  readonly attempt: number;
  /**
   * Postpone: when the handler returns, the message becomes invisible for `ms`, blocks its
   * partition meanwhile, and its next delivery is attempt 1. A thrown error wins over a hold.
   */
  hold(ms: number): void;
  /** Aborted when the delivery is presumed lost (visibility timeout) or the queue stops hard. */
  readonly signal: AbortSignal;
}

export type Handler<T = unknown> = (message: QueueMessage<T>, delivery: Delivery) => void | Promise<void>;

export interface RetryPolicy {
  maxAttempts: number;
  initialBackoffMs: number;
  backoffMultiplier: number;
  maxBackoffMs: number;
  visibilityTimeoutMs: number;
}

export interface ConsumerOptions extends Partial<RetryPolicy> {
  /** Messages handled at once, across partitions (one per partition at most). */
  concurrency?: number;
}

export interface PublishOptions {
  metadata?: Metadata;
}

export interface PublishRequest<T = unknown> {
  topic: string;
  partitionKey: string;
  id: string;
  payload: T;
  metadata?: Metadata;
}

export interface PublishResult {
  published: boolean;
  offset: number;
}
