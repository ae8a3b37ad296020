// Helpers shared by channel scripts. Anything in channels/ can be imported with a relative path and is
// bundled into each script that uses it.

/** `DOE^JOHN^Q` (XPN: family^given^middle) → `DOE, JOHN Q`. */
export const formatName = (xpn: string, component = '^'): string => {
  const [family = '', given = '', middle = ''] = xpn.split(component);
  const first = [given, middle].filter((part) => part !== '').join(' ');
  return first === '' ? family : `${family}, ${first}`;
};

/** The first identifier in a CX list (PID-3) whose type code (CX.5) is `type`; '' when none. */
export const identifierOfType = (msg: Message, type: string): string => {
  for (let rep = 1; ; rep++) {
    const id = msg.get(`PID-3[${rep}].1`);
    if (id === '') return '';
    if (msg.get(`PID-3[${rep}].5`) === type) return id;
  }
};
