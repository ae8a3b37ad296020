// How a failure inside the sandbox machinery reaches the engine. Kept apart from isolate.ts, which
// loads isolated-vm: the engine process itself never does (the sandbox runs in a child process).
import { FerryError } from '../errors.ts';

/** A failure as a FerryError: one of ours as it is, anything else the sandbox's own (retryable). */
export const asSandboxError = (error: unknown): FerryError =>
  error instanceof FerryError
    ? error
    : new FerryError('SANDBOX_FAILED', error instanceof Error ? error.message : String(error), { cause: error });
