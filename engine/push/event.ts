// What a pushed event carries, Crossbar style: positional `args` and keyword `kwargs`. Pure: turns
// a channel's output into an event and checks the body of an HTTP pusher post; no I/O here.

/** Topic names: dot-separated parts of a-z 0-9 _ -, such as `adt` or `lab.results.ward-5`. */
const TOPIC_PATTERN = /^[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9_-]+)*$/;
const MAX_TOPIC_LENGTH = 200;

export const topicProblem = (topic: unknown): string | undefined => {
  if (typeof topic !== 'string') return 'topic must be a string';
  if (topic.length > MAX_TOPIC_LENGTH) return `topic is longer than ${MAX_TOPIC_LENGTH} characters`;
  if (!TOPIC_PATTERN.test(topic)) return `topic "${topic.slice(0, 80)}" must be dot-separated parts of a-z, 0-9, "_" and "-" (such as lab.results)`;
  return undefined;
};

/**
 * The part of a topic that token grants name: the text before the first dot. A token whose
 * channels list holds `lab` (or `*`) may subscribe to `lab`, `lab.results`, `lab.results.ward-5`.
 */
export const topicGrant = (topic: string): string => topic.split('.', 1)[0]!;

export interface EventPayload {
  args: unknown[];
  kwargs: Record<string, unknown>;
}

/** An output read as an event; `topic` and `connectionId` only when it was an envelope naming them. */
export interface OutputEvent extends EventPayload {
  topic?: string;
  connectionId?: string;
}

const ENVELOPE_KEYS = ['topic', 'args', 'kwargs', 'connectionId'];

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const isEnvelope = (value: Record<string, unknown>): boolean => {
  const keys = Object.keys(value);
  return keys.length > 0 && keys.every((key) => ENVELOPE_KEYS.includes(key)) && keys.some((key) => key !== 'connectionId');
};

/** Why an envelope's fields cannot be used, or undefined. */
const envelopeProblem = (value: Record<string, unknown>): string | undefined => {
  if (value['topic'] !== undefined) {
    const problem = topicProblem(value['topic']);
    if (problem) return problem;
  }
  if (value['args'] !== undefined && !Array.isArray(value['args'])) return 'args must be an array';
  if (value['kwargs'] !== undefined && !isPlainObject(value['kwargs'])) return 'kwargs must be an object';
  if (value['connectionId'] !== undefined && (typeof value['connectionId'] !== 'string' || value['connectionId'] === '')) {
    return 'connectionId must be a non-empty string';
  }
  return undefined;
};

const parseJson = (text: string): { ok: true; value: unknown } | { ok: false; reason: string } => {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
};

/**
 * An output as an event. JSON is parsed: an envelope (an object with only the keys topic, args,
 * kwargs, connectionId) gives its fields; any other object becomes kwargs; an array becomes args;
 * a JSON scalar is the one arg. Anything that is not JSON (HL7, CSV, text) is sent as `args: [text]`.
 * Returns a string when an envelope is malformed (a bad topic, args not an array, …).
 */
export const eventFromOutput = (content: Buffer): OutputEvent | string => {
  const text = content.toString('utf8');
  const parsed = parseJson(text);
  if (!parsed.ok) return { args: [text], kwargs: {} };
  const value = parsed.value;
  if (Array.isArray(value)) return { args: value, kwargs: {} };
  if (!isPlainObject(value)) return { args: [value], kwargs: {} };
  if (!isEnvelope(value)) return { args: [], kwargs: value };
  const problem = envelopeProblem(value);
  if (problem) return `the output is a push envelope but ${problem}`;
  return {
    args: (value['args'] as unknown[] | undefined) ?? [],
    kwargs: (value['kwargs'] as Record<string, unknown> | undefined) ?? {},
    ...(value['topic'] === undefined ? {} : { topic: value['topic'] as string }),
    ...(value['connectionId'] === undefined ? {} : { connectionId: value['connectionId'] as string }),
  };
};

/**
 * Checks the body of an HTTP pusher post: a JSON object `{"topic", "args"?, "kwargs"?,
 * "connectionId"?}`. Returns what is wrong, for the 400 answer, or undefined when it is good.
 */
export const pushBodyProblem = (body: Buffer): string | undefined => {
  const parsed = parseJson(body.toString('utf8'));
  if (!parsed.ok) return `the body is not JSON: ${parsed.reason}`;
  const value = parsed.value;
  if (!isPlainObject(value)) return 'the body must be a JSON object such as {"topic": "news", "args": ["hello"]}';
  const unknown = Object.keys(value).find((key) => !ENVELOPE_KEYS.includes(key));
  if (unknown !== undefined) return `unknown key "${unknown.slice(0, 80)}" (use topic, args, kwargs, connectionId)`;
  if (value['topic'] === undefined) return 'topic is missing';
  return envelopeProblem(value);
};
