import test from 'ava';
import type { FerryError } from '../../engine/errors.ts';
import { channelsFolder, TAMPER, translatorFor } from './fixture.ts';

// Issue 9, finding 6: a script shares its context with the prelude that checks its outputs, and the
// context lives on between messages. A script that replaces the builtins the prelude relied on
// (Array.prototype.includes let a Host header through) must not change how its outputs are checked
// or shaped: not on the message that tampers, and not on later ones of the same channel.

/** A later message does not tamper; HOST tries the header again, untampered; TAMPER tampers and tries. */
const script = `${TAMPER}
const SMUGGLE = { url: 'https://api.example.org/in', headers: { Host: 'evil.example', 'Transfer-Encoding': 'chunked', 'Content-Length': '5' } };

export default (msg: Message, ctx: Context) => {
  if (msg.text === 'TAMPER') {
    tamper();
    ctx.deliver('smuggled', SMUGGLE);
    return 'after the smuggle';
  }
  if (msg.text === 'HOST') {
    ctx.deliver('smuggled', SMUGGLE);
    return null;
  }
  ctx.deliver(msg.text, { url: 'https://api.example.org/in', method: 'put', headers: { 'X-Trace': 'a1', 'Content-Type': 'text/plain' } });
  return ['returned', { n: 1 }, 2.5];
};
`;

const LATER = {
  outputs: ['LATER', 'returned', '{"n":1}', '2.5'],
  meta: [{ url: 'https://api.example.org/in', method: 'PUT', headers: { 'X-Trace': 'a1', 'Content-Type': 'text/plain' } }, null, null, null],
  logs: [],
};

test('the attack as filed: Array.prototype.includes replaced, then Host, Transfer-Encoding and Content-Length', async (t) => {
  const channels = await channelsFolder(t, {
    'includes.ts': `export default (msg: Message, ctx: Context) => {
  if (msg.text === 'TAMPER') Array.prototype.includes = () => false;
  ctx.deliver('x', { url: 'https://api.example.org/in', headers: { 'Transfer-Encoding': 'chunked', 'Content-Length': '5', Host: 'evil.example' } });
  return null;
};
`,
  });
  const translator = await translatorFor(t, channels.file('includes.ts'));
  for (const text of ['TAMPER', 'AFTER']) {
    const error = await t.throwsAsync<FerryError>(translator.run({ id: text, text }));
    t.is(error!.code, 'SCRIPT_BAD_RESULT');
    t.is(error!.message, 'channels/includes.ts:3:7: ctx.deliver header Transfer-Encoding is set by Ferry');
  }
});

test('a script that replaces builtins cannot smuggle a header, and its later messages are still checked and shaped', async (t) => {
  const channels = await channelsFolder(t, { 'tamper.ts': script });
  const translator = await translatorFor(t, channels.file('tamper.ts'));

  // Before any tampering: the reference for what a later message gives.
  t.deepEqual(await translator.run({ id: 'm0', text: 'LATER' }), LATER);

  const tampered = await t.throwsAsync<FerryError>(translator.run({ id: 'm1', text: 'TAMPER' }));
  t.is(tampered!.code, 'SCRIPT_BAD_RESULT');
  t.regex(tampered!.message, /^channels\/tamper\.ts:\d+:\d+: ctx\.deliver header Host is set by Ferry$/);

  // The tampering persists in the context, but changes nothing the prelude does.
  t.deepEqual(await translator.run({ id: 'm2', text: 'LATER' }), LATER);
  const again = await t.throwsAsync<FerryError>(translator.run({ id: 'm3', text: 'HOST' }));
  t.is(again!.code, 'SCRIPT_BAD_RESULT');
  t.regex(again!.message, /ctx\.deliver header Host is set by Ferry$/);
  t.deepEqual(await translator.run({ id: 'm4', text: 'LATER' }), LATER);
});
