import test from 'ava';
import { createSerial } from '../engine/serial.ts';

// One job at a time, in order; a failed job neither stops the next nor leaks into idle().

const deferred = () => {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

test('each job starts once the one before it settled, in the order handed in, and settles as its work does', async (t) => {
  const serial = createSerial();
  const log: string[] = [];
  const first = deferred();
  const second = deferred();
  const a = serial.run(async () => {
    log.push('a starts');
    await first.promise;
    log.push('a ends');
    return 'A';
  });
  const b = serial.run(async () => {
    log.push('b starts');
    await second.promise;
    throw new Error('b failed');
  });
  const bFails = t.throwsAsync(b, { message: 'b failed' });
  const c = serial.run(() => {
    log.push('c runs');
    return 'C';
  });
  let idle = false;
  const settled = serial.idle().then(() => (idle = true));

  await Promise.resolve();
  t.deepEqual(log, ['a starts'], 'b and c wait for a');
  second.resolve(); // b's own wait is over, but b has not started: it still waits for a
  await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(log, ['a starts']);
  first.resolve();
  t.is(await a, 'A');
  await bFails;
  t.is(await c, 'C', 'a failed job does not stop the next');
  await settled;
  t.true(idle);
  t.deepEqual(log, ['a starts', 'a ends', 'b starts', 'c runs']);
});

test('idle() resolves at once when nothing was handed in, and never rejects', async (t) => {
  const serial = createSerial();
  await serial.idle();
  const failed = t.throwsAsync(serial.run(() => Promise.reject(new Error('boom'))), { message: 'boom' });
  await t.notThrowsAsync(serial.idle());
  await failed;
});
