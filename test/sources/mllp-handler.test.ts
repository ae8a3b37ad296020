import test from 'ava';
import { readHeader } from '../../engine/hl7/header.ts';
import type { Intake } from '../../engine/intake.ts';
import { mllpHandler } from '../../engine/sources/mllp-handler.ts';
import { captureLogger } from '../helpers/logger.ts';

// What the MLLP handler logs for inbound ACKs, which it never answers: a sender can send them as fast
// as it likes, so one warning names the first (address, MSH-10) and the rest go to debug, counted for
// the interval's summary (log-throttle.test.ts). Which frames are ACKs is intake's (intake.test.ts).

/** An intake that sees every frame as what intake makes of an ACK. */
const ackIntake: Intake = {
  accept: async (raw) => ({ kind: 'ignored', header: readHeader(raw.toString('latin1')) }),
  drain: async () => undefined,
};
const ack = (id: string): Buffer => Buffer.from(`MSH|^~\\&|LAB|HOSP|FERRY|HOSP|20260101120000||ACK^A01^ACK|${id}|P|2.5\rMSA|AA|MSG${id}\r`, 'latin1');

test('inbound ACKs get no reply; a flood of them logs one warning naming the first, the rest at debug', async (t) => {
  const { logger, lines } = captureLogger();
  const handle = mllpHandler(ackIntake, logger);
  const replies = [];
  for (let i = 1; i <= 20; i++) replies.push(await handle(ack(`ACK${i}`), { remoteAddress: '127.0.0.1', remotePort: 40000 + (i % 2), id: i }));
  t.deepEqual(replies, Array(20).fill(null));

  const warnings = lines.filter((line) => line.level === 40);
  t.is(warnings.length, 1);
  t.like(warnings[0], {
    code: 'MLLP_ACK_IGNORED',
    source: 'mllp 127.0.0.1:40001',
    controlId: 'ACK1',
    msg: 'received an ACK as a message; not acknowledged',
  });
  const debug = lines.filter((line) => line.level === 20);
  t.deepEqual(debug.map((line) => line.controlId), Array.from({ length: 19 }, (_, i) => `ACK${i + 2}`));
  t.true(debug.every((line) => line.code === 'MLLP_ACK_IGNORED'));
});
