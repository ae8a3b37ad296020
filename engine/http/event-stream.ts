import type { ServerResponse } from 'node:http';
import type Koa from 'koa';
import type { EventBus } from '../events.ts';
import type { MessageSummary } from '../message.ts';

// GET /api/events: Server-Sent Events for the web UI. `channel` events carry a whole channel object
// whenever it changes — at once for a start or stop, otherwise found by comparing each channel once
// a second (counts, queue depths, script status), so a busy channel costs one event per second.
// `message` events carry message summaries, collected and sent every quarter second at most
// `maxMessages` at a time: under load the rest are dropped, the channel counts stay exact and a
// client re-reads the list. The stream never waits for a client: one that reads too slowly to keep
// its buffer under `maxBufferedBytes` is disconnected (EventSource reconnects by itself).

export interface EventStreamDeps {
  bus: EventBus;
  channelNames(): string[];
  /** The channel as GET /api/channels shows it. */
  channelObject(name: string): Promise<unknown>;
  messageSummary(id: string): MessageSummary | undefined;
  onError(error: unknown): void;
}

export interface EventStreamOptions {
  pingMs?: number;
  channelMs?: number;
  messageMs?: number;
  maxMessages?: number;
  maxBufferedBytes?: number;
}

export interface EventStream {
  /** Takes over the response; `alive` is asked at every ping and a false ends the stream. */
  serve(ctx: Koa.Context, alive: () => boolean): void;
  clients(): number;
}

interface Client {
  res: ServerResponse;
  alive: () => boolean;
}

const frame = (event: string, json: string): string => `event: ${event}\ndata: ${json}\n\n`;

export const createEventStream = (deps: EventStreamDeps, options: EventStreamOptions = {}): EventStream => {
  const { pingMs = 15_000, channelMs = 1000, messageMs = 250, maxMessages = 100, maxBufferedBytes = 256 * 1024 } = options;
  const clients = new Set<Client>();
  /** What each channel looked like when last sent, to send only changes. */
  const lastSent = new Map<string, string>();
  const pendingMessages = new Set<string>();
  let unsubscribe: (() => void) | undefined;
  let timers: NodeJS.Timeout[] = [];
  let comparing = false;

  const drop = (client: Client): void => {
    clients.delete(client);
    client.res.destroy();
    if (clients.size === 0) quiet();
  };

  const write = (client: Client, text: string): void => {
    if (client.res.writableLength > maxBufferedBytes) drop(client);
    else client.res.write(text);
  };

  const broadcast = (text: string): void => {
    for (const client of clients) write(client, text);
  };

  const sendChannel = async (name: string): Promise<void> => {
    const json = JSON.stringify(await deps.channelObject(name));
    if (lastSent.get(name) === json) return;
    lastSent.set(name, json);
    broadcast(frame('channel', json));
  };

  const compareChannels = async (): Promise<void> => {
    if (comparing) return; // a slow Redis must not pile up comparisons
    comparing = true;
    try {
      for (const name of deps.channelNames()) await sendChannel(name);
    } catch (error) {
      deps.onError(error);
    } finally {
      comparing = false;
    }
  };

  const sendMessages = (): void => {
    const ids = [...pendingMessages].slice(-maxMessages);
    pendingMessages.clear();
    for (const id of ids) {
      const summary = deps.messageSummary(id);
      if (summary) broadcast(frame('message', JSON.stringify(summary)));
    }
  };

  const ping = (): void => {
    for (const client of clients) {
      if (client.alive()) write(client, ': ping\n\n');
      else drop(client);
    }
  };

  /** The bus and timers run only while someone listens. */
  const listen = (): void => {
    unsubscribe = deps.bus.subscribe((event) => {
      if (event.kind === 'message') {
        // Bounded: past a few flushes' worth, older ids are dropped anyway.
        if (pendingMessages.size < maxMessages * 4) pendingMessages.add(event.id);
      } else {
        sendChannel(event.channel).catch(deps.onError);
      }
    });
    timers = [
      setInterval(() => void compareChannels(), channelMs),
      setInterval(sendMessages, messageMs),
      setInterval(ping, pingMs),
    ];
    for (const timer of timers) timer.unref();
  };

  const quiet = (): void => {
    unsubscribe?.();
    unsubscribe = undefined;
    for (const timer of timers) clearInterval(timer);
    timers = [];
    pendingMessages.clear();
    lastSent.clear();
  };

  return {
    serve(ctx, alive) {
      ctx.respond = false;
      const res = ctx.res;
      res.writeHead(200, {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-cache, no-transform',
        Connection: 'keep-alive',
        // nginx and similar proxies buffer responses unless told otherwise.
        'X-Accel-Buffering': 'no',
        'X-Content-Type-Options': 'nosniff',
      });
      res.write('retry: 3000\n\n');
      ctx.req.socket.setNoDelay(true);
      const client: Client = { res, alive };
      // The first client's starting state is also what the others (none yet) were last sent.
      const first = clients.size === 0;
      if (first) listen();
      clients.add(client);
      ctx.req.on('close', () => {
        if (clients.delete(client) && clients.size === 0) quiet();
      });
      // A new client starts from the current state of every channel.
      void (async () => {
        for (const name of deps.channelNames()) {
          const json = JSON.stringify(await deps.channelObject(name));
          if (!clients.has(client)) return;
          if (first && !lastSent.has(name)) lastSent.set(name, json);
          write(client, frame('channel', json));
        }
      })().catch(deps.onError);
    },
    clients: () => clients.size,
  };
};
