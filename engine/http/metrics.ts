import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Channel } from '../channel.ts';
import { statuses } from '../message.ts';
import type { MessageStore } from '../store/contract.ts';

// GET /metrics in the Prometheus text format. Every ferry_* value is read at scrape time from what
// already keeps it (the message log's totals, the queues, the channels): nothing on the message
// path updates a metric.

export const createMetrics = (deps: { channels: ReadonlyMap<string, Channel>; store: MessageStore }): Registry => {
  const { channels, store } = deps;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  new Counter({
    name: 'ferry_messages_total',
    help: 'Messages that reached each status, by channel: every logged message counts once as received, then once per status it enters. Kept in the message log, so it survives restarts and retention.',
    labelNames: ['channel', 'status'],
    registers: [registry],
    collect() {
      this.reset();
      const totals = store.totals();
      for (const channel of channels.keys()) {
        for (const status of statuses) this.inc({ channel, status }, totals.get(channel)?.[status] ?? 0);
      }
    },
  });

  new Gauge({
    name: 'ferry_queue_depth',
    help: 'Jobs waiting in a channel queue (inbound = before the translator; one queue per destination), not counting the ones being worked on.',
    labelNames: ['channel', 'queue'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const channel of channels.values()) {
        const { queues } = await channel.info();
        for (const [queue, depth] of Object.entries(queues)) this.set({ channel: channel.name, queue }, depth);
      }
    },
  });

  new Gauge({
    name: 'ferry_channel_up',
    help: '1 when the channel is running, 0 when it is stopped or failed to start.',
    labelNames: ['channel'],
    registers: [registry],
    collect() {
      for (const channel of channels.values()) this.set({ channel: channel.name }, channel.state() === 'running' ? 1 : 0);
    },
  });

  return registry;
};
