import test from 'ava';
import { request } from 'node:http';
import { defaultCost } from '../../engine/auth/passwords.ts';
import { startAdmin, type AdminHarness, type TestUser } from '../helpers/admin.ts';

// Bursts of parallel logins against the real admin listener: however they interleave, no more
// passwords are checked than the limit allows (5 per 15 minutes per address and per user), and
// every extra is refused at once with 429, Retry-After and a stable code. A checked attempt
// answers 401 (or 200) and is audited; a refused one answers 429 without a check.

// vera's hash has the production cost (~80 ms): the race this guards against lives in that time.
const USERS: TestUser[] = [
  { name: 'vera', role: 'viewer', password: 'vera-pass', cost: defaultCost },
  { name: 'ada', role: 'admin', password: 'ada-pass' },
];

interface Answer {
  status: number;
  code: string | undefined;
  retryAfter: string | undefined;
}

/** POST /api/login on a connection of its own, from `localAddress` (any 127.x address reaches the listener). */
const login = (admin: AdminHarness, username: string, password: string, localAddress = '127.0.0.1'): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const body = JSON.stringify({ username, password });
    const req = request(
      `${admin.base}/api/login`,
      { method: 'POST', agent: false, localAddress, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          const retryAfter = res.headers['retry-after'];
          resolve({ status: res.statusCode!, code: JSON.parse(text).error?.code, retryAfter });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });

const count = (answers: Answer[], status: number): number => answers.filter((a) => a.status === status).length;

const tally = (answers: Answer[]): string =>
  ['200', '401', 'AUTH_LOGIN_BUSY', 'AUTH_RATE_LIMITED'].map((what) => `${what}: ${answers.filter((a) => String(a.status) === what || a.code === what).length}`).join(', ');

/** Every refusal is a 429 in the API's error shape, told when to come back. */
const refusalsWellFormed = (answers: Answer[]): boolean =>
  answers.every((a) => a.status !== 429 || ((a.code === 'AUTH_RATE_LIMITED' || a.code === 'AUTH_LOGIN_BUSY') && /^[1-9]\d*$/.test(a.retryAfter ?? '')));

/** Wrong passwords one after another (none in flight: the burst has been answered) until the limit answers; how many were checked (401) on the way. */
const failUntilLimited = async (admin: AdminHarness, username: string, localAddress?: string): Promise<number> => {
  let checked = 0;
  for (;;) {
    const answer = await login(admin, username, 'still wrong', localAddress);
    if (answer.code === 'AUTH_RATE_LIMITED') return checked;
    if (answer.status !== 401) throw new Error(`unexpected answer ${JSON.stringify(answer)}`);
    if (++checked > 5) throw new Error('more than 5 checked and still not limited');
  }
};

const failedLogins = (admin: AdminHarness): number => admin.adminStore.auditLog(1000).filter((e) => e.action === 'login-failed').length;

test('200 parallel wrong logins from one address: at most 5 are checked, the rest are 429', async (t) => {
  const admin = await startAdmin(t, { users: USERS });
  const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => login(admin, 'vera', `guess ${i}`)));
  const checked = count(answers, 401);
  t.log(tally(answers));
  t.true(checked >= 1 && checked <= 5, `${checked} passwords checked`);
  t.is(count(answers, 429), 200 - checked);
  t.true(refusalsWellFormed(answers));
  t.is(failedLogins(admin), checked, 'each check audited, no other');

  // However few the burst got through, the address's allowance is 5 in all.
  t.is(checked + (await failUntilLimited(admin, 'vera')), 5);
  t.is(failedLogins(admin), 5);
  t.like(await login(admin, 'ada', 'ada-pass'), { status: 429, code: 'AUTH_RATE_LIMITED' }, 'even a right password waits now');
});

test('a right password inside the burst gives the guesses no more checks', async (t) => {
  const admin = await startAdmin(t, { users: USERS });
  const tries = Array.from({ length: 200 }, (_, i) => (i === 100 ? ['vera', 'vera-pass'] : i === 150 ? ['ada', 'ada-pass'] : ['vera', `guess ${i}`]));
  const answers = await Promise.all(tries.map(([user, password]) => login(admin, user!, password!)));
  const checked = count(answers, 401);
  t.log(tally(answers));
  t.true(checked <= 5, `${checked} wrong passwords checked`);
  t.is(checked + count(answers, 200) + count(answers, 429), 200);
  t.true(refusalsWellFormed(answers));
  // Whether the right ones got in or not, the wrong ones had 5 checks in all, burst and after.
  t.is(checked + (await failUntilLimited(admin, 'vera')), 5);
  t.is(failedLogins(admin), 5);
});

test('200 parallel wrong logins for one user from 40 addresses: at most 5 are checked', async (t) => {
  const admin = await startAdmin(t, { users: USERS });
  const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => login(admin, 'vera', `guess ${i}`, `127.0.0.${10 + (i % 40)}`)));
  const checked = count(answers, 401);
  t.log(tally(answers));
  t.true(checked >= 1 && checked <= 5, `${checked} passwords checked`);
  t.is(count(answers, 429), 200 - checked);
  t.true(refusalsWellFormed(answers));
  t.is(checked + (await failUntilLimited(admin, 'vera', '127.0.0.99')), 5);
  // The user is locked, not the addresses: another user logs in from one of them (at most one of
  // them can have had all 5 checks).
  const failures = admin.adminStore.auditLog(1000).filter((e) => e.detail === 'from 127.0.0.10').length;
  t.like(await login(admin, 'ada', 'ada-pass', failures < 5 ? '127.0.0.10' : '127.0.0.11'), { status: 200 });
});

test("a user's right password does not wipe the failures counted for that user from elsewhere", async (t) => {
  const admin = await startAdmin(t, { users: USERS });
  for (let i = 2; i <= 5; i++) t.is((await login(admin, 'vera', 'guess', `127.0.0.${i}`)).status, 401);
  t.is((await login(admin, 'vera', 'vera-pass', '127.0.0.6')).status, 200);
  t.is((await login(admin, 'vera', 'guess', '127.0.0.7')).status, 401);
  // Five guesses at vera in all: the next is refused, her own login in between notwithstanding.
  t.like(await login(admin, 'vera', 'guess', '127.0.0.8'), { status: 429, code: 'AUTH_RATE_LIMITED' });
});
