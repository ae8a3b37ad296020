import test, { type ExecutionContext } from 'ava';
import { join } from 'node:path';
import { pino } from 'pino';
import { channelControl } from '../engine/channel-control.ts';
import type { Channel, ChannelState } from '../engine/channel.ts';
import { createEventBus, type EngineEvent } from '../engine/events.ts';
import { openAdminStore } from '../engine/store/admin-store.ts';
import { tempDir } from './helpers/temp.ts';

// Start/stop on an operator's word: saved, announced, never overlapping for one channel.

/** A channel whose start and stop take `ms` and record when they ran. */
const slowChannel = (name: string, log: string[], ms = 20, failStart = false): Channel => {
  let state: ChannelState = 'stopped';
  const step = async (what: string, to: ChannelState) => {
    log.push(`${name} ${what} begin`);
    await new Promise((resolve) => setTimeout(resolve, ms));
    log.push(`${name} ${what} end`);
    if (what === 'start' && failStart) {
      state = 'error';
      throw new Error('port taken');
    }
    state = to;
  };
  return { name, state: () => state, start: () => step('start', 'running'), stop: () => step('stop', 'stopped') } as unknown as Channel;
};

const setup = async (t: ExecutionContext, channels: Channel[]) => {
  const state = openAdminStore(join(await tempDir(t), 'admin.db'));
  t.teardown(() => state.close());
  const bus = createEventBus();
  const events: EngineEvent[] = [];
  bus.subscribe((event) => events.push(event));
  const map = new Map(channels.map((c) => [c.name, c]));
  return { state, events, control: channelControl({ channels: map, state, bus, logger: pino({ level: 'silent' }) }) };
};

test('start and stop of one channel run one after the other, in call order', async (t) => {
  const log: string[] = [];
  const { control, events } = await setup(t, [slowChannel('a', log)]);
  await Promise.all([control.start('a', 'x'), control.stop('a', 'x'), control.start('a', 'x')]);
  t.deepEqual(log, ['a start begin', 'a start end', 'a stop begin', 'a stop end', 'a start begin', 'a start end']);
  t.deepEqual(events, Array(3).fill({ kind: 'channel', channel: 'a' }));
});

test('the saved state decides what starts with the engine; a failed start is still saved and announced', async (t) => {
  const log: string[] = [];
  const { control, state, events } = await setup(t, [slowChannel('a', log, 1), slowChannel('b', log, 1, true), slowChannel('c', log, 1)]);
  await control.stop('c', 'ada');
  await t.throwsAsync(control.start('b', 'ada'), { message: 'port taken' });
  t.deepEqual(state.stoppedChannels(), new Set(['c']), 'b stays wanted running');
  t.is(events.length, 2);

  log.length = 0;
  await control.start('a', 'ada');
  const fresh = channelControl({
    channels: new Map([['a', slowChannel('a', log, 1)], ['c', slowChannel('c', log, 1)]]),
    state,
    bus: createEventBus(),
    logger: pino({ level: 'silent' }),
  });
  log.length = 0;
  t.deepEqual(await fresh.startSaved(), ['c']);
  t.deepEqual(log, ['a start begin', 'a start end']);
  await t.throwsAsync(control.stop('zzz', 'ada'), { message: 'no channel named zzz' });
});

test('startSaved starts the channels together: one slow to start (a large backlog to queue again) does not hold the others', async (t) => {
  const log: string[] = [];
  let bStarted!: () => void;
  const afterB = new Promise<void>((resolve) => (bStarted = resolve));
  // a finishes its start only once b has started: one after the other, this would never end.
  const a = {
    name: 'a',
    start: async () => {
      log.push('a start begin');
      await afterB;
      log.push('a start end');
    },
  } as unknown as Channel;
  const b = {
    name: 'b',
    start: async () => {
      log.push('b start');
      bStarted();
    },
  } as unknown as Channel;
  const failing = slowChannel('c', log, 1, true);
  const { control, events } = await setup(t, [a, b]);
  t.deepEqual(await control.startSaved(), []);
  t.deepEqual(log, ['a start begin', 'b start', 'a start end']);
  t.deepEqual(events.map((e) => e.kind === 'channel' && e.channel).sort(), ['a', 'b']);

  // A failed start fails startSaved, once the others have finished theirs.
  log.length = 0;
  const { control: withFailure } = await setup(t, [failing, slowChannel('d', log, 50)]);
  await t.throwsAsync(withFailure.startSaved(), { message: 'port taken' });
  t.true(log.includes('d start end'));
});
