import { BlockList, isIP } from 'node:net';

// `allowIps` of an HTTPS source: single addresses and CIDR ranges, IPv4 and IPv6. Node's BlockList
// does the matching (it also matches IPv4 rules against IPv4-mapped IPv6 peers, ::ffff:10.1.2.3,
// which is how a dual-stack listener reports IPv4 clients).

export interface AddressRule {
  address: string;
  family: 'ipv4' | 'ipv6';
  /** Prefix length; 32 / 128 for a single address. */
  prefix: number;
}

/** Parses `10.0.0.0/8`, `192.168.1.7`, `fd00::/8`, `::1`; a string says what is wrong. */
export const parseAddressRule = (text: string): AddressRule | string => {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return `"${text}" is not an IPv4 or IPv6 address or CIDR range`;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const bits = version === 4 ? 32 : 128;
  if (slash < 0) return { address, family, prefix: bits };
  const prefixText = text.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > bits) return `"${text}": the prefix length must be 0 to ${bits}`;
  return { address, family, prefix };
};

/** A predicate admitting the addresses the rules cover. Throws TypeError on a rule parseAddressRule refuses. */
export const addressMatcher = (rules: readonly string[]): ((address: string) => boolean) => {
  const list = new BlockList();
  for (const text of rules) {
    const rule = parseAddressRule(text);
    if (typeof rule === 'string') throw new TypeError(rule);
    list.addSubnet(rule.address, rule.prefix, rule.family);
  }
  return (address) => {
    const version = isIP(address);
    return version !== 0 && list.check(address, version === 4 ? 'ipv4' : 'ipv6');
  };
};
