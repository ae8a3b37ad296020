import test from 'ava';
import { join } from 'node:path';
import { parseConfig } from '../../engine/config/load.ts';
import { FerryError } from '../../engine/errors.ts';

// engine.users: where `ferry user` writes and the engine reads the admin users.

const config = (engine: string): string =>
  `${engine}channels:\n  - name: a\n    source: { type: channel }\n    destinations:\n      - { name: d, type: file, dir: out }\n`;

const dir = '/srv/ferry';
const file = join(dir, 'channels.yaml');

const valid: Array<[string, string, string]> = [
  ['absent: users.yaml next to the config', '', join(dir, 'users.yaml')],
  ['relative to the config folder', 'engine:\n  users: ./secrets/users.yaml\n', join(dir, 'secrets', 'users.yaml')],
  ['relative without ./', 'engine:\n  users: ../shared/users.yaml\n', '/srv/shared/users.yaml'],
  ['absolute', 'engine:\n  users: /etc/ferry/users.yaml\n', '/etc/ferry/users.yaml'],
  ['from the environment', 'engine:\n  users: ${FERRY_USERS:-./u.yaml}\n', join(dir, 'u.yaml')],
];

for (const [what, engine, expected] of valid) {
  test(`engine.users ${what}`, (t) => {
    t.is(parseConfig(config(engine), file, {}).engine.users, expected);
  });
}

const invalid: Array<[string, string, RegExp]> = [
  ['empty', 'engine:\n  users: ""\n', /channels\.yaml:2:10 engine\.users: must not be empty/],
  ['a number', 'engine:\n  users: 5\n', /engine\.users: must be a string \(got 5\)/],
  ['a mapping', 'engine:\n  users: { bob: admin }\n', /engine\.users: must be a string \(got a mapping\)/],
  ['misspelt', 'engine:\n  user: ./u.yaml\n', /unknown key "user" \(did you mean "users"\?\)/],
];

for (const [what, engine, message] of invalid) {
  test(`engine.users ${what} is CONFIG_INVALID`, (t) => {
    const error = t.throws(() => parseConfig(config(engine), file, {}), { instanceOf: FerryError, message });
    t.is(error?.code, 'CONFIG_INVALID');
  });
}
