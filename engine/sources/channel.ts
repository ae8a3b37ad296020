// The `channel` source: messages handed off by other channels' `channel` destinations, straight
// into this channel's intake. Nothing runs for it: a hand-off reaches the intake even while this
// channel is stopped, and waits in its queue for the next start.
import { Type } from '@sinclair/typebox';
import type { SourceConfig } from '../config/contract.ts';
import { Tag } from '../config/units.ts';
import type { SourceConnector } from '../connector.ts';

export interface ChannelSourceConfig extends SourceConfig {
  type: 'channel';
}

const schema = Type.Object(
  { type: Tag('channel', 'Receive messages handed off by other channels (their `type: channel` destinations).') },
  { additionalProperties: false, title: 'Channel source', description: 'Fed by other channels.' },
);

export const channelSourceConnector: SourceConnector<typeof schema, ChannelSourceConfig> = {
  type: 'channel',
  schema,
  takesHandoffs: true,
  normalize: () => ({ type: 'channel' }),
  describe: () => 'channel',
  activity: () => 'fed by other channels',
  // A hand-off may carry anything a script returned; a resend re-enters the same way.
  intakeOptions: () => ({ requireHl7: false }),
  create: () => undefined,
};
