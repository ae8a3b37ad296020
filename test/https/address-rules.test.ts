import test from 'ava';
import { addressMatcher, parseAddressRule } from '../../engine/wire/address-rules.ts';

const rules = ['10.0.0.0/8', '192.168.1.7', '2001:db8::/32', '::1'];
const allowed = addressMatcher(rules);

const cases: Array<[string, boolean]> = [
  ['10.0.0.1', true],
  ['10.255.255.255', true],
  ['11.0.0.1', false],
  ['192.168.1.7', true],
  ['192.168.1.8', false],
  // How a dual-stack listener reports IPv4 clients.
  ['::ffff:10.1.2.3', true],
  ['::ffff:192.168.1.8', false],
  ['2001:db8::1', true],
  ['2001:db8:ffff::1', true],
  ['2001:db9::1', false],
  ['::1', true],
  ['::2', false],
  ['', false],
  ['not an address', false],
];

for (const [address, expected] of cases) {
  test(`allowIps ${rules.join(',')} ${expected ? 'admits' : 'refuses'} "${address}"`, (t) => {
    t.is(allowed(address), expected);
  });
}

const parsed: Array<[string, ReturnType<typeof parseAddressRule> | RegExp]> = [
  ['10.0.0.0/8', { address: '10.0.0.0', family: 'ipv4', prefix: 8 }],
  ['127.0.0.1', { address: '127.0.0.1', family: 'ipv4', prefix: 32 }],
  ['fd00::/8', { address: 'fd00::', family: 'ipv6', prefix: 8 }],
  ['::1', { address: '::1', family: 'ipv6', prefix: 128 }],
  ['0.0.0.0/0', { address: '0.0.0.0', family: 'ipv4', prefix: 0 }],
  ['10.0.0.0/33', /prefix length must be 0 to 32/],
  ['fd00::/129', /prefix length must be 0 to 128/],
  ['10.0.0.0/', /prefix length/],
  ['10.0.0.0/-1', /prefix length/],
  ['10.0.0', /not an IPv4 or IPv6 address/],
  ['example.org', /not an IPv4 or IPv6 address/],
];

for (const [text, expected] of parsed) {
  test(`parseAddressRule("${text}")`, (t) => {
    const result = parseAddressRule(text);
    if (expected instanceof RegExp) t.regex(result as string, expected);
    else t.deepEqual(result, expected);
  });
}

test('an empty rule list admits nobody; a bad rule throws', (t) => {
  t.false(addressMatcher([])('127.0.0.1'));
  t.throws(() => addressMatcher(['10.0.0.0/40']), { instanceOf: TypeError });
});
