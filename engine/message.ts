// What the message log records: a message, the stages it went through, and the status rules in
// one place. A message's overall status is derived from its stages, never set independently.

/** Status of one stage, and (derived) of a whole message. */
export type Status = 'received' | 'filtered' | 'transformed' | 'queued' | 'sent' | 'error';

export const statuses: readonly Status[] = ['received', 'filtered', 'transformed', 'queued', 'sent', 'error'];

export const isStatus = (value: string): value is Status => (statuses as readonly string[]).includes(value);

/** Stage names: the translator's stage, and one stage per destination and output. */
export const TRANSFORM_STAGE = 'transform';
export const destinationStage = (destination: string, output: number): string => `${destination}#${output}`;

/**
 * Where and how one output is to be sent, as a script chose with `ctx.deliver(body, meta)`;
 * destinations that cannot use a field ignore it (the https destination reads all three).
 */
export interface OutputMeta {
  url?: string;
  method?: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  headers?: Record<string, string>;
  /** The one WebSocket connection a websocket destination sends this output to. */
  connectionId?: string;
}

export interface StageRecord {
  stage: string;
  status: Status;
  /** Stage output (the translator's output text, a destination's response), if any. */
  content: string | null;
  error: string | null;
  attempts: number;
  updatedAt: string;
}

export interface MessageSummary {
  id: string;
  channel: string;
  status: Status;
  receivedAt: string;
  updatedAt: string;
  source: string;
  parentId: string | null;
  messageType: string | null;
  controlId: string | null;
  sender: string | null;
  error: string | null;
}

export interface MessageDetail extends MessageSummary {
  charset: string;
  /** The received content decoded as text (in its declared character set). */
  text: string;
  /** The received bytes, base64, for byte-exact inspection. */
  raw: string;
  outputs: string[];
  stages: StageRecord[];
}

/**
 * The overall status from the stages: an error anywhere wins; otherwise a message with outputs is
 * `sent` once every destination stage is sent, and `queued` while any is pending.
 */
export const deriveStatus = (transform: Status | undefined, destinations: Status[]): Status => {
  if (transform === undefined) return 'received';
  if (transform === 'error' || destinations.includes('error')) return 'error';
  if (transform === 'filtered') return 'filtered';
  if (destinations.length === 0) return transform;
  return destinations.every((status) => status === 'sent') ? 'sent' : 'queued';
};
