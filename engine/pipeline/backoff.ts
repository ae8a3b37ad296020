// How long to wait before trying again: one formula for every retry in Ferry, a destination's
// delivery (its `retry` policy) and a queue job that failed for a reason of the engine's own.
import type { RetryPolicy } from '../config/contract.ts';

/** Queue jobs the engine itself could not finish (its message log unreachable, its sandbox down): long and patient. */
export const INTERNAL_RETRY: RetryPolicy = { attempts: 50, backoff: 'exponential', delayMs: 1_000, maxDelayMs: 60_000 };

/**
 * Milliseconds to wait before try number `attempt + 1` (attempt counts from 1), with ±20% jitter
 * so that many messages failing together do not retry in lockstep.
 */
export const retryDelay = (policy: RetryPolicy, attempt: number, random: () => number = Math.random): number => {
  const base = policy.backoff === 'fixed' ? policy.delayMs : policy.delayMs * 2 ** (attempt - 1);
  const capped = Math.min(base, policy.maxDelayMs);
  return Math.round(capped * (0.8 + 0.4 * random()));
};

/**
 * The wait before the next try: the policy's, or longer when the destination said when to come back
 * (a Retry-After, an open circuit breaker), but never longer than the policy's maxDelay.
 */
export const nextTryIn = (policy: RetryPolicy, attempt: number, retryAfterMs: number | undefined): number => {
  const backoff = retryDelay(policy, attempt);
  return retryAfterMs === undefined ? backoff : Math.max(backoff, Math.min(retryAfterMs, policy.maxDelayMs));
};

/** Whether another try is allowed after `attempt` tries (attempts 0 = forever). */
export const mayRetry = (policy: RetryPolicy, attempt: number): boolean => policy.attempts === 0 || attempt < policy.attempts;
