import test from 'ava';
import { parseConfig } from '../engine/config/load.ts';
import { FerryError } from '../engine/errors.ts';

// The reliability keys: engine.commitTimeout, channels[].maxQueued, channels[].dedupe.

const config = (engine: string, channel: string): string =>
  `${engine ? `engine:\n${engine}\n` : ''}channels:
  - name: a
    source: { type: mllp, port: 6661 }
${channel}
    destinations:
      - { name: d, type: file, dir: out }
`;

const parse = (engine: string, channel: string) => parseConfig(config(engine, channel), '/tmp/ferry-config-test/channels.yaml', {});

test('defaults: commit timeout 5 s, maxQueued 100000, no dedupe', (t) => {
  const parsed = parse('', '');
  t.is(parsed.engine.commitTimeoutMs, 5_000);
  t.is(parsed.channels[0]!.maxQueued, 100_000);
  t.is(parsed.channels[0]!.dedupe, undefined);
});

const values: Array<[string, string, { commitTimeoutMs: number; maxQueued: number; dedupe: { windowMs: number } | undefined }]> = [
  ['  commitTimeout: 1s', '    maxQueued: 10', { commitTimeoutMs: 1_000, maxQueued: 10, dedupe: undefined }],
  ['  commitTimeout: 250', '    dedupe: { window: 10m }', { commitTimeoutMs: 250, maxQueued: 100_000, dedupe: { windowMs: 600_000 } }],
  ['', '    maxQueued: 1\n    dedupe: { window: 1500 }', { commitTimeoutMs: 5_000, maxQueued: 1, dedupe: { windowMs: 1_500 } }],
  ['', '    dedupe:\n      window: 2h', { commitTimeoutMs: 5_000, maxQueued: 100_000, dedupe: { windowMs: 7_200_000 } }],
];

for (const [engine, channel, expected] of values) {
  test(`set: ${[engine, channel].map((s) => s.trim()).filter(Boolean).join(', ').replaceAll('\n', ' ')}`, (t) => {
    const parsed = parse(engine, channel);
    t.deepEqual(
      { commitTimeoutMs: parsed.engine.commitTimeoutMs, maxQueued: parsed.channels[0]!.maxQueued, dedupe: parsed.channels[0]!.dedupe },
      expected,
    );
  });
}

const mistakes: Array<[string, string, RegExp]> = [
  ['  commitTimeout: 5 s', '', /engine\.commitTimeout: must be a duration/],
  ['', '    maxQueued: 0', /channels\[0\]\.maxQueued: must be at least 1 \(got 0\)/],
  ['', '    maxQueued: many', /channels\[0\]\.maxQueued: must be an integer/],
  ['', '    dedupe: {}', /channels\[0\]\.dedupe: missing required key "window"/],
  ['', '    dedupe: { window: soon }', /channels\[0\]\.dedupe\.window: must be a duration/],
  ['', '    dedupe: { windw: 10m }', /unknown key "windw" \(did you mean "window"\?\)/],
  ['', '    dedupe: 10m', /channels\[0\]\.dedupe: must be a mapping/],
];

for (const [engine, channel, message] of mistakes) {
  test(`mistake: ${(engine || channel).trim()}`, (t) => {
    const error = t.throws(() => parse(engine, channel), { instanceOf: FerryError });
    t.is(error?.code, 'CONFIG_INVALID');
    t.regex(error?.message ?? '', message);
  });
}
