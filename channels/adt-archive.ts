// Channel adt-archive: keeps ADT messages only, with the patient name upper-cased for the archive.
import { formatName, identifierOfType } from './lib/hl7-helpers.ts';

export default function (msg: Message, ctx: Context) {
  // Orders and results share the feed; only admissions, discharges and transfers are archived.
  if (msg.get('MSH-9.1') !== 'ADT') return null;

  msg.set('PID-5.1', msg.get('PID-5.1').toUpperCase());
  msg.set('PID-5.2', msg.get('PID-5.2').toUpperCase());

  const mrn = identifierOfType(msg, 'MR') || msg.get('PID-3.1');
  ctx.log(`${msg.get('MSH-9')} for MRN ${mrn}: ${formatName(msg.get('PID-5'))}`);
  return msg;
}
