import test from 'ava';
import { join } from 'node:path';
import { parseConfig } from '../../engine/config/load.ts';
import { FerryError } from '../../engine/errors.ts';

// engine.tokens: where `ferry token` and https sources find the token table.

const config = (engine: string): string =>
  `${engine}channels:\n  - name: a\n    source: { type: channel }\n    destinations:\n      - { name: d, type: file, dir: out }\n`;

const dir = '/srv/ferry';
const file = join(dir, 'channels.yaml');

const valid: Array<[string, string, string]> = [
  ['absent: tokens.yaml next to the config', '', join(dir, 'tokens.yaml')],
  ['relative to the config folder', 'engine:\n  tokens: ./secrets/tokens.yaml\n', join(dir, 'secrets', 'tokens.yaml')],
  ['relative without ./', 'engine:\n  tokens: ../shared/tokens.yaml\n', '/srv/shared/tokens.yaml'],
  ['absolute', 'engine:\n  tokens: /etc/ferry/tokens.yaml\n', '/etc/ferry/tokens.yaml'],
  ['from the environment', 'engine:\n  tokens: ${FERRY_TOKENS:-./t.yaml}\n', join(dir, 't.yaml')],
];

for (const [what, engine, expected] of valid) {
  test(`engine.tokens ${what}`, (t) => {
    t.is(parseConfig(config(engine), file, {}).engine.tokens, expected);
  });
}

const invalid: Array<[string, string, RegExp]> = [
  ['empty', 'engine:\n  tokens: ""\n', /channels\.yaml:2:11 engine\.tokens: must not be empty/],
  ['a number', 'engine:\n  tokens: 5\n', /engine\.tokens: must be a string \(got 5\)/],
  ['a list', 'engine:\n  tokens: [a]\n', /engine\.tokens: must be a string \(got a list\)/],
  ['misspelt', 'engine:\n  token: ./t.yaml\n', /unknown key "token" \(did you mean "tokens"\?\)/],
];

for (const [what, engine, message] of invalid) {
  test(`engine.tokens ${what} is CONFIG_INVALID`, (t) => {
    const error = t.throws(() => parseConfig(config(engine), file, {}), { instanceOf: FerryError, message });
    t.is(error?.code, 'CONFIG_INVALID');
  });
}
