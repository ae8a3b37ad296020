// Stops hammering an endpoint that keeps failing. After `failures` consecutive transient failures
// the breaker opens: calls fail at once for `cooldownMs`. Then it lets one probe through (half-open):
// its success closes the breaker, its failure opens it for another cool-down. A refused call says how
// long until the next probe, so a FIFO delivery loop waits exactly that long instead of spinning.

export type BreakerState = 'closed' | 'open' | 'half-open';

export type BreakerVerdict = { ok: true } | { ok: false; retryAfterMs: number };

export interface CircuitBreaker {
  /** Whether a call may go ahead now; a yes in half-open state is the probe, and must report back. */
  check(): BreakerVerdict;
  /** The call reached the endpoint and got an answer that is not worth retrying (2xx, or 4xx). */
  success(): void;
  /** The call failed in a way that retrying might fix (connection, timeout, 5xx). */
  failure(): void;
  state(): BreakerState;
}

export interface CircuitBreakerOptions {
  failures: number;
  cooldownMs: number;
  now?: () => number;
  /** Told when the breaker opens or closes again, for the log. */
  onChange?: (state: 'open' | 'closed', consecutiveFailures: number) => void;
}

/** How long calls behind a probe wait before asking again. */
const PROBE_WAIT_MS = 1_000;

export const circuitBreaker = ({ failures, cooldownMs, now = Date.now, onChange }: CircuitBreakerOptions): CircuitBreaker => {
  let state: BreakerState = 'closed';
  let consecutive = 0;
  let openedAt = 0;
  let probing = false;

  const open = (): void => {
    const wasOpen = state !== 'closed';
    state = 'open';
    openedAt = now();
    probing = false;
    if (!wasOpen) onChange?.('open', consecutive);
  };

  return {
    check() {
      if (state === 'closed') return { ok: true };
      if (state === 'open') {
        const left = openedAt + cooldownMs - now();
        if (left > 0) return { ok: false, retryAfterMs: left };
        state = 'half-open';
      }
      if (probing) return { ok: false, retryAfterMs: PROBE_WAIT_MS };
      probing = true;
      return { ok: true };
    },
    success() {
      const wasOpen = state !== 'closed';
      state = 'closed';
      probing = false;
      consecutive = 0;
      if (wasOpen) onChange?.('closed', 0);
    },
    failure() {
      consecutive++;
      if (state === 'half-open' || consecutive >= failures) open();
    },
    state: () => state,
  };
};
