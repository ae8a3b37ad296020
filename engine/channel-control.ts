import type { Logger } from 'pino';
import type { Channel } from './channel.ts';
import { FerryError } from './errors.ts';
import type { EventBus } from './events.ts';
import { createSerial, type Serial } from './serial.ts';
import type { AdminStore } from './store/admin-store.ts';

// Starting and stopping channels on an operator's word: the state is saved (a channel stopped
// through the API stays stopped across restarts), announced on the event bus, and one channel's
// start and stop never overlap.

export interface ChannelControl {
  /**
   * At engine start: starts every channel except those saved as stopped, all at once (one channel
   * catching up on a large backlog must not hold the others' sources closed); returns those
   * skipped. Rejects with the first failure once every start has finished.
   */
  startSaved(): Promise<string[]>;
  start(name: string, by: string | null): Promise<Channel>;
  stop(name: string, by: string | null): Promise<Channel>;
}

/** The channel called `name`, or CHANNEL_NOT_FOUND (404 over the admin API). */
export const channelNamed = (channels: ReadonlyMap<string, Channel>, name: string): Channel => {
  const channel = channels.get(name);
  if (!channel) throw new FerryError('CHANNEL_NOT_FOUND', `no channel named ${name}`);
  return channel;
};

export const channelControl = (deps: {
  channels: ReadonlyMap<string, Channel>;
  state: AdminStore;
  bus: EventBus;
  logger: Logger;
}): ChannelControl => {
  const { channels, state, bus, logger } = deps;
  /** Per channel, its starts and stops one after another (names are those of configured channels). */
  const serials = new Map<string, Serial>();

  /** Runs `step` after any start or stop of the same channel still in progress. */
  const serialized = <T>(name: string, step: () => Promise<T>): Promise<T> => {
    let serial = serials.get(name);
    if (!serial) serials.set(name, (serial = createSerial()));
    return serial.run(step);
  };

  const change = async (name: string, to: 'running' | 'stopped', by: string | null): Promise<Channel> => {
    const channel = channelNamed(channels, name);
    return serialized(name, async () => {
      // Saved first: the operator's intent stands even if starting fails now (it is retried at the next engine start).
      state.saveChannelState(name, to, by);
      try {
        await (to === 'running' ? channel.start() : channel.stop());
        logger.info({ channel: name, by }, to === 'running' ? 'channel started through the admin API' : 'channel stopped through the admin API');
      } finally {
        bus.publish({ kind: 'channel', channel: name });
      }
      return channel;
    });
  };

  return {
    async startSaved() {
      const stopped = state.stoppedChannels();
      const skipped: string[] = [];
      const starts: Array<Promise<void>> = [];
      for (const channel of channels.values()) {
        if (stopped.has(channel.name)) {
          skipped.push(channel.name);
          logger.info({ channel: channel.name }, 'channel left stopped: it was stopped through the admin API');
          continue;
        }
        starts.push(serialized(channel.name, () => channel.start()).then(() => bus.publish({ kind: 'channel', channel: channel.name })));
      }
      const failed = (await Promise.allSettled(starts)).find((result) => result.status === 'rejected');
      if (failed) throw failed.reason;
      return skipped;
    },
    start: (name, by) => change(name, 'running', by),
    stop: (name, by) => change(name, 'stopped', by),
  };
};
