// What the rest of the engine may ask of the message log, whatever stores it (today SQLite,
// store/message-store.ts): the records it takes, what it answers, and the contract of each call.
import type { MessageDetail, MessageSummary, OutputMeta, Status } from '../message.ts';
import type { MessageQuery } from './message-list.ts';

export type { MessageQuery } from './message-list.ts';

export interface ReceivedMessage {
  id: string;
  channel: string;
  source: string;
  raw: Buffer;
  /** Decoded text, indexed for search. */
  text: string;
  charset: string;
  parentId?: string | null;
  messageType?: string | null;
  controlId?: string | null;
  sender?: string | null;
  receivedAt?: number;
  /** The inbound queue job it is queued under, for recovery (intake sets it). */
  job?: string | null;
  /**
   * Duplicate suppression: when an earlier message of the channel holds `key` (sender and MSH-10)
   * within its window, this one is logged as its duplicate (filtered, `MESSAGE_DUPLICATE: duplicate
   * of <first> <note>`) and not processed; otherwise this message takes the key for `windowMs`.
   */
  dedupe?: { key: string; windowMs: number; note: string };
}

/** What `receive` did: `fresh` false when the id was already recorded; `duplicateOf` the first message's id. */
export interface Received {
  fresh: boolean;
  duplicateOf?: string;
}

/** A message as the translator step needs it, with what its transform stage already holds. */
export interface TransformInput extends StoredMessage {
  transform: Status | undefined;
}

/** One output as a destination step needs it, with the status its delivery already has. */
export interface DeliveryInput {
  id: string;
  output: number;
  content: Buffer;
  meta: OutputMeta | undefined;
  status: Status | undefined;
  controlId: string | null;
  charset: string;
  receivedAt: number;
}

export interface StoredMessage {
  id: string;
  channel: string;
  raw: Buffer;
  charset: string;
  status: Status;
  controlId: string | null;
  receivedAt: number;
  /** The inbound queue job it was last queued under; null in a log written before jobs were recorded. */
  job: string | null;
}

export type TransformRecord =
  /** `meta` runs parallel to `outputs` when a script chose where outputs go (ctx.deliver). */
  /** `jobs`: per destination, the queue job its deliveries of this message are queued under. */
  | { status: 'transformed'; outputs: Buffer[]; meta?: Array<OutputMeta | null>; destinations: string[]; jobs?: Record<string, string>; logs: string }
  | { status: 'filtered'; logs: string }
  | { status: 'error'; error: string; logs: string };

export interface DeliveryRecord {
  status: 'queued' | 'sent' | 'error';
  attempts: number;
  error?: string | null;
  response?: string | null;
}

export type ChannelCounts = Record<Status, number> & { total: number };

/** One delivery of one output; a page of them continues after the last one of the page before. */
export interface QueuedDelivery {
  /** The message's place in arrival order. */
  seq: number;
  id: string;
  output: number;
  /** The queue job it was queued under; null in a log written before jobs were recorded. */
  job: string | null;
}

/** A message still to transform; a page of them continues after the last one's seq. */
export interface ReceivedWork {
  seq: number;
  id: string;
  /** The inbound queue job it was queued under; null in a log written before jobs were recorded. */
  job: string | null;
}

export interface MessageStore {
  /** Records an accepted message (see Received); a message with a known id is left as it is. */
  receive(message: ReceivedMessage): Promise<Received>;
  /** Records a message that was refused at intake (e.g. not HL7): logged as error, never processed. */
  reject(message: ReceivedMessage, error: string): Promise<void>;
  recordTransform(id: string, record: TransformRecord): Promise<void>;
  recordDelivery(id: string, stage: string, record: DeliveryRecord): Promise<void>;
  /** Marks a message errored outside any stage (e.g. its queue entry could not be written); it holds no dedupe key. */
  recordError(id: string, error: string): Promise<void>;
  /**
   * Records that work is queued again under `job` (recovery): the messages `work` names (their
   * inbound job), or with `destination` their deliveries to it.
   */
  assignJob(job: string, work: Array<{ id: string; output?: number }>, destination?: string): Promise<void>;
  /** Marks a message filtered as a duplicate of an earlier one (`reason` names it): never processed. */
  recordDuplicate(id: string, reason: string): Promise<void>;
  /** The channel's backlog: messages received and not yet sent, filtered or errored. O(statuses). */
  unfinished(channel: string): number;
  /** What waits in the channel's queues: messages still to translate, and per destination deliveries still queued. O(destinations). */
  queueDepths(channel: string): { inbound: number; destinations: Record<string, number> };
  /** The channel's messages still `received`, after `afterSeq` in arrival order (for recovery at start). */
  receivedSince(channel: string, afterSeq: number, limit: number): ReceivedWork[];
  /**
   * The next `limit` deliveries to `destination` still `queued` in the channel's unfinished
   * messages, after `after` (the last of the previous page; undefined: from the start), in arrival
   * order then output order (for recovery of delivery jobs Redis lost). Pages by delivery, not by
   * message: one message may hold any number of outputs.
   */
  queuedDeliveries(channel: string, destination: string, after: Omit<QueuedDelivery, 'job'> | undefined, limit: number): QueuedDelivery[];
  /** Message `id`'s next `limit` outputs after `afterOutput` whose delivery to `destination` is still `queued`, in order, with their jobs. */
  queuedOutputs(id: string, destination: string, afterOutput: number, limit: number): Array<{ output: number; job: string | null }>;
  /** The messages `ids` (those still in the log), in that order, with their transform stage's status. */
  transformInputs(ids: string[]): TransformInput[];
  /** The outputs `work` names, for `destination` (those still in the log), in that order. */
  deliveryInputs(destination: string, work: Array<{ id: string; output: number }>): DeliveryInput[];
  load(id: string): StoredMessage | undefined;
  output(id: string, index: number): Buffer | undefined;
  /** What ctx.deliver chose for an output; undefined when nothing was chosen. */
  outputMeta(id: string, index: number): OutputMeta | undefined;
  stageStatus(id: string, stage: string): Status | undefined;
  get(id: string): MessageDetail | undefined;
  summary(id: string): MessageSummary | undefined;
  list(query: MessageQuery): { items: MessageSummary[]; nextCursor: string | null };
  counts(): Map<string, ChannelCounts>;
  /** Messages that ever reached each status, by channel (never decreases; for metrics counters). */
  totals(): Map<string, Partial<Record<Status, number>>>;
  /** Deletes finished messages received before `before` (ms). Returns how many went. */
  purge(before: number): number;
  /**
   * Calls `listener` with the message's id after each write above commits (every write names its
   * message, so none can be left out); not for purge, which removes finished messages in bulk. A
   * listener must not throw. Returns the function that removes it.
   */
  onCommit(listener: (id: string) => void): () => void;
  /** Resolves once every write made so far is committed. */
  flush(): Promise<void>;
  close(): Promise<void>;
}
