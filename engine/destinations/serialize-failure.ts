// A destination's own work on an output before anything is sent — reading its JSON, serializing
// values, assembling the request — depends on the output alone: when it fails, it fails the same way
// on every try, so retrying it would only hold a fifo queue forever. Each destination runs that work
// through `building` (one place per destination), which turns whatever it throws that is not already
// a FerryError (JSON.stringify's RangeError on deep nesting, TypeError on a circular value or a
// BigInt) into a permanent DESTINATION_SERIALIZE_FAILED.
import { FerryError, isFerryError } from '../errors.ts';

/** What went wrong, in words an operator can act on, with the runtime's own text kept. */
const explain = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error);
  const text = `${error.name}: ${error.message}`;
  if (error instanceof RangeError && /call stack/i.test(error.message)) return `a value is nested too deeply (${text})`;
  if (error instanceof RangeError && /(string|array|buffer) length|too large/i.test(error.message)) return `it is too large (${text})`;
  return text;
};

/** Runs `build` (pure work on one output); a failure that is not a FerryError becomes DESTINATION_SERIALIZE_FAILED. */
export const building = <T>(what: string, build: () => T): T => {
  try {
    return build();
  } catch (error) {
    if (isFerryError(error)) throw error;
    throw new FerryError('DESTINATION_SERIALIZE_FAILED', `cannot build ${what} from this output: ${explain(error)}; it would fail the same way on every try`, {
      cause: error,
    });
  }
};
