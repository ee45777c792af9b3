import type { RetryPolicy } from './types.ts';

/** Delay before redelivering after failed attempt `attempt` (1-based): 1 s, 2 s, 4 s … capped. */
export function backoffMs(policy: RetryPolicy, attempt: number): number {
  const raw = policy.initialBackoffMs * policy.backoffMultiplier ** Math.max(0, attempt - 1);
  return Math.min(policy.maxBackoffMs, Math.round(raw));
}
