import type { SourceConfig } from '../config.ts';
import type { IntakeOptions } from '../intake.ts';

/**
 * How a channel's source hands bytes to intake: whether only HL7 is accepted, and the character
 * set the source decodes with when it knows better than MSH-18 (a file source's `encoding`). A
 * resend re-enters the same way, so a message is judged and decoded as it was on arrival.
 */
export const sourceIntakeOptions = (source: SourceConfig): Pick<IntakeOptions, 'requireHl7' | 'charset'> => {
  switch (source.type) {
    case 'mllp':
      return { requireHl7: true };
    case 'file':
      return source.encoding === 'auto' ? { requireHl7: true } : { requireHl7: true, charset: source.encoding };
    case 'https':
    case 'pusher':
    case 'channel':
      return { requireHl7: false };
  }
};
