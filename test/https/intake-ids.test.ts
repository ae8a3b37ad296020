import test from 'ava';
import { join } from 'node:path';
import { pino } from 'pino';
import { createIntake } from '../../engine/intake.ts';
import { createQueue, inboundQueueName, type InboundJob } from '../../engine/pipeline/queues.ts';
import { redisConnectionOptions } from '../../engine/redis/connection.ts';
import { openMessageStore } from '../../engine/store/message-store.ts';
import { startTestRedis } from '../helpers/redis.ts';
import { tempDir } from '../helpers/temp.ts';

// Sender-given ids (X-Ferry-Message-Id) at intake: the same id again in the same channel is a
// duplicate — acknowledged, not queued twice — but the same id in another channel is never
// mistaken for one: that message would be acknowledged and silently never processed.

test('a fixed id: a duplicate in its own channel, refused (not dropped) in another', async (t) => {
  const redis = await startTestRedis();
  t.teardown(() => redis.stop());
  const store = openMessageStore(join(await tempDir(t), 'messages.db'));
  t.teardown(() => store.close());
  const logger = pino({ level: 'silent' });
  const connection = redisConnectionOptions({ path: redis.path });
  const intakeFor = (channel: string) => {
    const queue = createQueue<InboundJob>(inboundQueueName(channel), connection);
    t.teardown(() => queue.close());
    const intake = createIntake({ channel, store, queue, logger });
    t.teardown(() => intake.drain());
    return { intake, queue };
  };
  const adt = intakeFor('adt');
  const lab = intakeFor('lab');
  const id = '01J9ZQ4V3M8Y2K5T6N7P8R9S0T';
  const options = { source: 'https 127.0.0.1', requireHl7: false, id };

  t.like(await adt.intake.accept(Buffer.from('first'), options), { kind: 'accepted', id, duplicate: false });
  t.like(await adt.intake.accept(Buffer.from('first'), options), { kind: 'accepted', id, duplicate: true });
  t.is(await adt.queue.count(), 1);

  const other = await lab.intake.accept(Buffer.from('another'), options);
  t.is(other.kind, 'failed');
  t.regex(other.kind === 'failed' ? other.error.message : '', /already used by another channel/);
  t.is(await lab.queue.count(), 0);
  t.is(store.load(id)?.channel, 'adt');
});
