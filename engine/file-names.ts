// File-name rules the file source and the file destination share, so that what one writes the
// other reads: which names a reader takes for files still being written, and where a suffix goes
// ("-1", "-<message id>") that tells apart files that would otherwise have the same name.
import path from 'node:path';

/** Names a writer uses while a file is incomplete: the file source never reads them. */
export const inProgressName = (name: string): boolean => name.startsWith('.') || /\.(?:tmp|part)$/i.test(name);

/** "a.hl7" → "a-1.hl7"; "a" → "a-1"; ".a" → ".a-1" (a leading dot is not an extension). */
export const withSuffix = (name: string, suffix: number | string): string => {
  const ext = path.extname(name);
  return `${name.slice(0, name.length - ext.length)}-${suffix}${ext}`;
};
