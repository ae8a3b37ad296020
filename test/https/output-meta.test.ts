import test from 'ava';
import { Database } from '../../engine/store/sqlite.ts';
import { join } from 'node:path';
import { openMessageStore } from '../../engine/store/message-store.ts';
import { tempDir } from '../helpers/temp.ts';

// Where a script sent an output (ctx.deliver's url, method, headers) is stored with the output, and a
// message log written before the meta column existed is upgraded in place.

const received = (id: string) => ({ id, channel: 'relay', source: 'test', raw: Buffer.from('x'), text: 'x', charset: 'UTF-8' });

test('meta is stored per output and read back', async (t) => {
  const dir = await tempDir(t);
  const store = openMessageStore(join(dir, 'messages.db'));
  t.teardown(() => store.close());
  await store.receive(received('M1'));
  await store.recordTransform('M1', {
    status: 'transformed',
    outputs: [Buffer.from('a'), Buffer.from('b')],
    meta: [{ url: 'https://api.example.org/x', method: 'PUT', headers: { 'X-A': '1' } }, null],
    destinations: ['out'],
    logs: '',
  });
  t.deepEqual(store.outputMeta('M1', 0), { url: 'https://api.example.org/x', method: 'PUT', headers: { 'X-A': '1' } });
  t.is(store.outputMeta('M1', 1), undefined);
  t.is(store.outputMeta('M1', 2), undefined);
  t.deepEqual(store.output('M1', 1), Buffer.from('b'));
});

test('an older message log gets the meta column; its outputs keep their content', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'messages.db');
  // The outputs table as the first release created it.
  const old = new Database(file);
  old.exec(`CREATE TABLE outputs (message_id TEXT NOT NULL, idx INTEGER NOT NULL, content BLOB NOT NULL, PRIMARY KEY (message_id, idx)) WITHOUT ROWID;
    INSERT INTO outputs VALUES ('OLD', 0, x'6F6C64');`);
  old.close();

  const store = openMessageStore(file);
  t.teardown(() => store.close());
  t.deepEqual(store.output('OLD', 0), Buffer.from('old'));
  t.is(store.outputMeta('OLD', 0), undefined);
  await store.receive(received('NEW'));
  await store.recordTransform('NEW', { status: 'transformed', outputs: [Buffer.from('new')], meta: [{ url: 'https://x.example.org/' }], destinations: ['out'], logs: '' });
  t.deepEqual(store.outputMeta('NEW', 0), { url: 'https://x.example.org/' });
  await store.close();
  // Opening again is a no-op.
  const again = openMessageStore(file);
  t.deepEqual(again.outputMeta('NEW', 0), { url: 'https://x.example.org/' });
  await again.close();
});
