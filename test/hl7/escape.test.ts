import test from 'ava';
import { type Delimiters, defaultDelimiters } from '../../engine/hl7/delimiters.ts';
import { escapeHl7, unescapeHl7 } from '../../engine/hl7/escape.ts';

const v27: Delimiters = { ...defaultDelimiters, truncation: '#' };
const custom: Delimiters = { field: '#', component: '$', repetition: '*', escape: '@', subcomponent: '%', truncation: '!' };

// [data, wire text, delimiters]: each row is checked both ways.
const both: [string, string, Delimiters][] = [
  ['plain text', 'plain text', defaultDelimiters],
  ['a|b', 'a\\F\\b', defaultDelimiters],
  ['a^b', 'a\\S\\b', defaultDelimiters],
  ['a&b', 'a\\T\\b', defaultDelimiters],
  ['a~b', 'a\\R\\b', defaultDelimiters],
  ['a\\b', 'a\\E\\b', defaultDelimiters],
  ['a\rb', 'a\\X0D\\b', defaultDelimiters],
  ['a\nb', 'a\\X0A\\b', defaultDelimiters],
  ['|^~\\&', '\\F\\\\S\\\\R\\\\E\\\\T\\', defaultDelimiters],
  ['#5', '#5', defaultDelimiters],
  ['Room #5', 'Room \\P\\5', v27],
  ['|$*@%!', '\\F\\$*@%!', defaultDelimiters],
  ['#$*@%!|^~\\&', '@F@@S@@R@@E@@T@@P@|^~\\&', custom],
  ['', '', defaultDelimiters],
];

for (const [data, wire, d] of both) {
  test(`escape/unescape ${JSON.stringify(data)} ⇄ ${JSON.stringify(wire)}`, (t) => {
    t.is(escapeHl7(data, d), wire);
    t.is(unescapeHl7(wire, d), data);
  });
}

const decodeOnly: [string, string, string][] = [
  ['hex ASCII', 'x\\X41\\y', 'xAy'],
  ['hex lower case', '\\X4a4B\\', 'JK'],
  ['hex UTF-8 é', 'caf\\XC3A9\\', 'café'],
  ['hex UTF-8 漢', '\\XE6BCA2\\', '漢'],
  ['hex UTF-8 split over two sequences', '\\XC3\\\\XA9\\', 'é'],
  ['hex UTF-8 astral', '\\XF09F9982\\', '🙂'],
  ['hex latin1 when not UTF-8', 'caf\\XE9\\', 'café'],
  ['hex overlong UTF-8 falls back to latin1', '\\XC0AF\\', 'À¯'],
  ['hex odd digit count kept', '\\X414\\', '\\X414\\'],
  ['hex non-hex kept', '\\XZZ\\', '\\XZZ\\'],
  ['highlight kept', '\\H\\bold\\N\\', '\\H\\bold\\N\\'],
  ['formatting kept', 'a\\.br\\b', 'a\\.br\\b'],
  ['charset switch kept', '\\C2842\\x', '\\C2842\\x'],
  ['local escape kept', '\\Zfoo\\', '\\Zfoo\\'],
  ['\\P\\ kept before v2.7', 'a\\P\\b', 'a\\P\\b'],
  ['unterminated escape kept', 'C:\\temp', 'C:\\temp'],
  ['an unknown sequence keeps its closing character', 'C:\\dir\\S\\', 'C:\\dir\\S\\'],
  ['known after unknown', '\\H\\x\\S\\y\\N\\', '\\H\\x^y\\N\\'],
  ['empty sequence kept', 'a\\\\b', 'a\\\\b'],
];

for (const [title, wire, data] of decodeOnly) {
  test(`unescape: ${title}`, (t) => {
    t.is(unescapeHl7(wire, defaultDelimiters), data);
  });
}

test('a long hex run (100 KB of bytes) decodes without overflowing the stack', (t) => {
  const bytes = 'E9'.repeat(100_000);
  t.is(unescapeHl7(`\\X${bytes}\\`, defaultDelimiters), 'é'.repeat(100_000));
});

test('escaping 300 KB is linear and lossless', (t) => {
  const data = 'x|y^'.repeat(75_000);
  const wire = escapeHl7(data, defaultDelimiters);
  t.is(wire.length, 75_000 * 8);
  t.is(unescapeHl7(wire, defaultDelimiters), data);
});
