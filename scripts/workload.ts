// The workload shared by the measuring scripts (npm run bench and its load process, sandbox-cost.ts): one
// realistic ADT^A01 and the translator a typical ADT archive feed runs, so their figures describe the
// same work.

// A realistic ADT^A01 of about 530 bytes; MSH-10 and the MRN differ per message.
export const benchAdt = (controlId: string, n: number): Buffer =>
  Buffer.from(
    [
      `MSH|^~\\&|REGADT|GOODHEALTH|FERRY|GOODHEALTH|20240115083000||ADT^A01^ADT_A01|${controlId}|P|2.5|||AL|NE`,
      'EVN|A01|20240115083000|||JSMITH^SMITH^JANE',
      `PID|1||MRN${n}^^^GOODHEALTH^MR~987654321^^^USSSA^SS||doe^john^a||19800101|M|||123 MAIN ST^^SPRINGFIELD^IL^62701^USA||^PRN^PH^^^217^5550100|||S||ACCT${n}|`,
      'NK1|1|DOE^JANE^M|SPO^Spouse^HL70063|||^PRN^PH^^^217^5550101',
      'PV1|1|I|WARD1^101^A^GOODHEALTH||||1234^WELBY^MARCUS^^^DR|||MED||||ADM|||1234^WELBY^MARCUS^^^DR|IN||SELF|||||||||||||||||||GOODHEALTH|||||20240115082500',
      'AL1|1|DA|PCN^Penicillin^L|SV|Hives',
    ].join('\r') + '\r',
  );

// The translator: what a typical ADT archive feed does.
export const BENCH_SCRIPT = `
export default function (msg: Message, ctx: Context) {
  if (msg.get('MSH-9.1') !== 'ADT') return null;
  // The MRN is the PID-3 repetition whose identifier type (PID-3.5) is MR.
  let mrn = '';
  for (let i = 1; msg.get(\`PID-3[\${i}].1\`) !== ''; i++) {
    if (msg.get(\`PID-3[\${i}].5\`) === 'MR') mrn = msg.get(\`PID-3[\${i}].1\`);
  }
  msg.set('PID-5.1', msg.get('PID-5.1').toUpperCase());
  msg.set('PID-5.2', msg.get('PID-5.2').toUpperCase());
  msg.set('MSH-5', 'ARCHIVE');
  ctx.log(\`\${msg.get('MSH-9')} for MRN \${mrn}\`);
  return msg;
}
`;
