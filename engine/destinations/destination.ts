// What every destination is: a factory's plain object that sends one output of one message.
import type { OutputMeta } from '../message.ts';

export interface Delivery {
  /** The message id: stable across retries and crashes, so receivers can drop duplicates. */
  id: string;
  channel: string;
  destination: string;
  /** Which of the translator's outputs (0 for the usual single output). */
  output: number;
  content: Buffer;
  /** The character set `content` is encoded in (the inbound message's MSH-18); absent = UTF-8. */
  charset?: string;
  /** Where the script sent this output (ctx.deliver), for destinations that can follow it. */
  meta?: OutputMeta;
  controlId: string | null;
  receivedAt: number;
  /**
   * Aborted when an operator skips this delivery: the engine stops waiting for the attempt at
   * once, and a destination that can also stops its work (the https destination ends its request).
   */
  signal?: AbortSignal;
}

/** How one delivery of a sendMany went: the outcome for the message log, or why it failed. */
export type SendOutcome = { ok: true; response: string } | { ok: false; error: unknown };

export interface Destination {
  /** Sends one output; resolves with a short description of the outcome for the message log. */
  send(delivery: Delivery): Promise<string>;
  /**
   * Optional, for destinations that do better with several outputs at once (files fsynced together):
   * sends them in order and answers one outcome per delivery it tried, stopping at the first failure
   * (the ones after it are not tried), so a fifo destination keeps its order.
   */
  sendMany?(deliveries: Delivery[]): Promise<SendOutcome[]>;
  close(): Promise<void>;
}
