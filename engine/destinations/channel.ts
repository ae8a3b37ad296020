import { Type } from '@sinclair/typebox';
import type { DestinationConfig } from '../config/contract.ts';
import { Name, Tag } from '../config/units.ts';
import type { ConnectorContext, DestinationConnector } from '../connector.ts';
import { FerryError } from '../errors.ts';
import { handoffMessageId } from '../wire/ids.ts';
import type { Delivery, Destination } from './destination.ts';

// Hands an output to another channel's intake, as that channel's new message. Its id is derived
// from this message's, so a hand-off replayed after a crash is recognised, not processed twice.
// The loader checks the target exists and takes hand-offs (its source is `type: channel`) and that
// hand-offs close no cycle: this destination claims its target.

export interface ChannelDestinationConfig extends DestinationConfig {
  type: 'channel';
  channel: string;
}

const schema = Type.Object(
  {
    type: Tag('channel', 'Hand the message to another channel in this file.'),
    channel: Name({
      title: 'Target channel',
      description: 'Name of the channel that receives the message; its source must be `type: channel`.',
    }),
  },
  {
    additionalProperties: false,
    title: 'Channel destination',
    description: 'Hands each message to another channel.',
  },
);

export const channelDestination = (config: ChannelDestinationConfig, { intakeOf }: Pick<ConnectorContext, 'intakeOf'>): Destination => {
  const target = intakeOf(config.channel);
  if (!target) throw new FerryError('CHANNEL_NOT_FOUND', `destination ${config.name}: no channel named ${config.channel}`);
  return {
    async send(delivery: Delivery) {
      const result = await target.accept(delivery.content, {
        source: `channel ${delivery.channel}`,
        requireHl7: false,
        id: handoffMessageId(delivery.id, delivery.destination, delivery.output),
        parentId: delivery.id,
      });
      if (result.kind === 'rejected' || result.kind === 'failed') throw result.error;
      if (result.kind === 'ignored') {
        throw new FerryError('SCRIPT_BAD_RESULT', `channel ${config.channel} ignores ACK messages; nothing was handed over`);
      }
      return `handed to ${config.channel} as ${result.id}${result.duplicate ? ' (already there)' : ''}`;
    },
    async close() {},
  };
};

export const channelDestinationConnector: DestinationConnector<typeof schema, ChannelDestinationConfig> = {
  type: 'channel',
  schema,
  claims: (raw) => (typeof raw['channel'] === 'string' ? [{ kind: 'hand-off', channel: raw['channel'], at: ['channel'] }] : []),
  normalize: (raw) => ({ type: 'channel', channel: raw.channel }),
  create: channelDestination,
};
