// A file source's `pattern`: a glob on one file name (never a path), compiled to a RegExp.
// * any characters, ? one character, [abc] [a-z] [!abc] one of (or none of), {hl7,txt} one of the
// alternatives; everything else is literal. Pure: the file source's config check uses it too.
import { FerryError } from '../errors.ts';

const literal = (char: string): string => char.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Throws CONFIG_INVALID for a pattern that does not compile (e.g. the range [z-a]). */
export const fileNamePattern = (glob: string): RegExp => {
  let source = '';
  let inAlternatives = false;
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i]!;
    if (char === '*') source += '.*';
    else if (char === '?') source += '.';
    else if (char === '[' && glob.indexOf(']', i + 2) !== -1) {
      // A "]" right after "[" (or "[!") is a member, as in the shell.
      const start = glob[i + 1] === '!' ? i + 2 : i + 1;
      const end = glob.indexOf(']', start + 1);
      if (end === -1) {
        source += '\\[';
        continue;
      }
      const members = glob.slice(start, end).replace(/[\\\]^]/g, '\\$&');
      source += `[${glob[i + 1] === '!' ? '^' : ''}${members}]`;
      i = end;
    } else if (char === '{' && !inAlternatives && glob.includes('}', i)) {
      source += '(?:';
      inAlternatives = true;
    } else if (char === '}' && inAlternatives) {
      source += ')';
      inAlternatives = false;
    } else if (char === ',' && inAlternatives) {
      source += '|';
    } else {
      source += literal(char);
    }
  }
  try {
    return new RegExp(`^${source}$`, 's');
  } catch (cause) {
    throw new FerryError('CONFIG_INVALID', `pattern ${JSON.stringify(glob)} is not a valid glob: ${(cause as Error).message}`, { cause });
  }
};
