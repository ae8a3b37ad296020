// The ADT^A01 the end-to-end tests send. Each test pins the exact bytes it expects back, so every
// field a test varies is an option and the defaults are the bytes most tests use.

export interface AdtOptions {
  /** MSH-10. */
  controlId: string;
  /** PID-3.1; default `MRN-<controlId>`. */
  mrn?: string;
  /** PID-5; default DOE^JOHN. */
  name?: string;
  /** MSH-9; default ADT^A01^ADT_A01. */
  type?: string;
  /** MSH-3; default REGSYS. */
  sender?: string;
  /** MSH-5; default FERRY. */
  receiver?: string;
  /** MSH-6; default LAB. */
  facility?: string;
  /** Only MSH and a PID without birth date and sex (no EVN). */
  brief?: boolean;
  /** Adds a PV1 (inpatient, WARD1). */
  visit?: boolean;
}

export const adtSegments = (options: AdtOptions): string[] => {
  const { controlId, mrn = `MRN-${controlId}`, name = 'DOE^JOHN', type = 'ADT^A01^ADT_A01', sender = 'REGSYS', receiver = 'FERRY', facility = 'LAB' } = options;
  const msh = `MSH|^~\\&|${sender}|HOSP|${receiver}|${facility}|20260101120000||${type}|${controlId}|P|2.5`;
  if (options.brief) return [msh, `PID|1||${mrn}^^^HOSP^MR||${name}`];
  return [msh, 'EVN|A01|20260101120000', `PID|1||${mrn}^^^HOSP^MR||${name}||19800101|M`, ...(options.visit ? ['PV1|1|I|WARD1^101^A'] : [])];
};

/** The segments joined with CR, ending in CR, as MLLP carries them. */
export const adtMessage = (options: AdtOptions): string => adtSegments(options).join('\r') + '\r';
