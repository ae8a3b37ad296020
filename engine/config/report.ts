// Where config problems are collected and how they read: each with file:line:column, the key path
// and a message, all thrown together once a stage of loading is done (config/load.ts).

import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter } from 'yaml';
import { FerryError, type ErrorCode } from '../errors.ts';
import type { KeyPath } from './contract.ts';

/** One problem in the config file; FerryError details.errors holds a list of these. */
export interface ConfigProblem {
  code: ErrorCode;
  file: string;
  line: number;
  column: number;
  /** Key path such as `channels[0].destinations[1].type`; empty for the whole file. */
  path: string;
  message: string;
}

/** The file being loaded: its parsed document (with positions) and the problems found so far. */
export interface ConfigSource {
  file: string;
  doc: Document;
  lineCounter: LineCounter;
  problems: ConfigProblem[];
}

/** Records a problem at a key path (or at the key itself, with `key`), positioned at its node. */
export const report = (source: ConfigSource, code: ErrorCode, at: KeyPath, message: string, { key = false } = {}): void => {
  const offset = locate(source.doc, at, key)?.range?.[0] ?? 0;
  const { line, col } = source.lineCounter.linePos(offset);
  source.problems.push({ code, file: source.file, line, column: col, path: keyPath(at), message });
};

/** The line a key path starts on, for messages that point back at an earlier entry. */
export const lineOf = (source: ConfigSource, at: KeyPath): number => source.lineCounter.linePos(locate(source.doc, at, false)?.range?.[0] ?? 0).line;

const formatConfigProblem = (p: ConfigProblem): string =>
  `${p.file}:${p.line}:${p.column} ${p.path ? `${p.path}: ` : ''}${p.message}`;

/** Throws every collected problem at once: under their shared code, or CONFIG_INVALID when they differ. */
export function throwProblems(source: ConfigSource): void {
  const { problems } = source;
  if (problems.length === 0) return;
  problems.sort((a, b) => a.line - b.line || a.column - b.column);
  const codes = new Set(problems.map((p) => p.code));
  const code = codes.size === 1 ? problems[0]!.code : 'CONFIG_INVALID';
  throw new FerryError(code, problems.map(formatConfigProblem).join('\n'), {
    details: { file: source.file, errors: problems },
  });
}

const keyPath = (at: KeyPath): string =>
  at.reduce<string>((s, seg) => (typeof seg === 'number' ? `${s}[${seg}]` : s ? `${s}.${seg}` : seg), '');

/** The node at a key path (or the key itself), else the nearest ancestor that exists, for its position. */
function locate(doc: Document, at: KeyPath, key: boolean): { range?: [number, number, number] | null } | null {
  let node: unknown = doc.contents;
  let found = doc.contents as { range?: [number, number, number] | null } | null;
  for (const [i, seg] of at.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair || !isScalar(pair.key)) break;
      // An empty value (`port:`) has no node of its own; its key marks the spot.
      if ((key && i === at.length - 1) || pair.value === null) return pair.key;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number' && node.items[seg]) {
      node = node.items[seg];
    } else {
      break;
    }
    found = node as typeof found;
  }
  return found;
}

