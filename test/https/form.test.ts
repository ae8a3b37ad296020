import test from 'ava';
import { looksUrlEncoded, parseForm } from '../../engine/http/form.ts';

const fields = (body: string | Buffer) => {
  const parsed = parseForm(Buffer.from(body));
  return parsed && Object.fromEntries([...parsed].map(([k, v]) => [k, v.toString('latin1')]));
};

const cases: Array<[string, string | Buffer, Record<string, string> | undefined]> = [
  ['plain fields', 'message=abc&secret_token=t0k', { message: 'abc', secret_token: 't0k' }],
  ['+ is a space, %XX a byte', 'message=MSH%7C%5E%7E%5C%26+x%0D', { message: 'MSH|^~\\& x\r' }],
  ['a latin1 byte stays one byte', 'message=caf%E9', { message: 'caf\u00e9' }],
  ['lower-case hex', 'message=%c3%a9', { message: '\u00c3\u00a9' }],
  ['an empty value and a bare name', 'a=&b', { a: '', b: '' }],
  ['empty pairs are skipped', '&&a=1&&', { a: '1' }],
  ['the first of repeated fields wins', 'a=1&a=2', { a: '1' }],
  ['= inside a value', 'a=x=y', { a: 'x=y' }],
  ['an empty body', '', {}],
  ['a bad escape', 'message=%zz', undefined],
  ['a truncated escape', 'message=%4', undefined],
];

for (const [what, body, expected] of cases) {
  test(`form: ${what}`, (t) => {
    t.deepEqual(fields(body), expected);
  });
}

const shapes: Array<[string, boolean]> = [
  ['message=MSH%7C%5E%7E&secret_token=fy_abc-123', true],
  ["a=b*c.d_e~f!g'h(i)+j", true],
  ['', true],
  ['MSH|^~\\&|REG|HOSP\r', false],
  ['{"message": "x"}', false],
  ['message=two words', false],
];
for (const [body, expected] of shapes) {
  test(`looksUrlEncoded(${JSON.stringify(body)}) is ${expected}`, (t) => {
    t.is(looksUrlEncoded(Buffer.from(body)), expected);
  });
}
