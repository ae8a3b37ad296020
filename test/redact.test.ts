import test from 'ava';
import { REDACTED, redactSecrets } from '../engine/redact.ts';

// What the admin API shows of a channel's config: secrets hidden, the rest as configured.

test('secret-named keys and URL passwords are hidden; everything else is kept', (t) => {
  const config = {
    name: 'lab',
    source: { type: 'https', path: '/in/lab', auth: 'token', allowIps: ['10.0.0.0/8'] },
    destinations: [
      {
        name: 'api',
        type: 'https',
        url: 'https://user:hunter2@lab.example/api',
        token: 'abc123',
        hmac: { keyId: 'k1', secret: 's3cr3t' },
        key: '/etc/ferry/client.key',
        cert: '/etc/ferry/client.pem',
        headers: { Authorization: 'Bearer xyz', 'X-Api-Key': 'k', 'X-Trace': 'on', Cookie: 'a=b' },
        clientSecret: 'cs',
        accessTokens: ['t1', 't2'],
        password: '',
        retry: { attempts: 5 },
      },
    ],
    redis: 'rediss://:pw@redis.example:6380/0',
    plain: 'http://host/path?token=not-a-key',
  };
  t.deepEqual(redactSecrets(config), {
    name: 'lab',
    source: { type: 'https', path: '/in/lab', auth: 'token', allowIps: ['10.0.0.0/8'] },
    destinations: [
      {
        name: 'api',
        type: 'https',
        url: `https://user:${REDACTED}@lab.example/api`,
        token: REDACTED,
        hmac: { keyId: 'k1', secret: REDACTED },
        key: '/etc/ferry/client.key',
        cert: '/etc/ferry/client.pem',
        headers: { Authorization: REDACTED, 'X-Api-Key': REDACTED, 'X-Trace': 'on', Cookie: REDACTED },
        clientSecret: REDACTED,
        accessTokens: [REDACTED, REDACTED],
        password: '',
        retry: { attempts: 5 },
      },
    ],
    redis: `rediss://:${REDACTED}@redis.example:6380/0`,
    plain: 'http://host/path?token=not-a-key',
  });
  t.is(config.destinations[0]!.token, 'abc123', 'the input is not changed');
});
