import test from 'ava';
import { join } from 'node:path';
import { openAdminStore } from '../../engine/store/admin-store.ts';
import { tempDir } from '../helpers/temp.ts';

// data/admin.db: channel states set through the API, and the audit log; both survive a reopen.

test('channel states and the audit log survive closing and reopening', async (t) => {
  const file = join(await tempDir(t), 'admin.db');
  const first = openAdminStore(file);
  t.deepEqual(first.stoppedChannels(), new Set());
  first.saveChannelState('a', 'stopped', 'ada');
  first.saveChannelState('b', 'stopped', null);
  first.saveChannelState('b', 'running', 'ada');
  first.audit({ user: 'ada', action: 'stop', target: 'a', detail: null });
  first.audit({ user: 'bob', action: 'login-failed', target: null, detail: 'from 10.0.0.1' });
  first.close();
  first.close();

  const second = openAdminStore(file);
  t.teardown(() => second.close());
  t.deepEqual(second.stoppedChannels(), new Set(['a']));
  const log = second.auditLog(10);
  t.deepEqual(
    log.map(({ at: _, ...rest }) => rest),
    [
      { user: 'bob', action: 'login-failed', target: null, detail: 'from 10.0.0.1' },
      { user: 'ada', action: 'stop', target: 'a', detail: null },
    ],
  );
  t.true(Date.now() - Date.parse(log[0]!.at) < 60_000);
  t.is(second.auditLog(1).length, 1);
});
