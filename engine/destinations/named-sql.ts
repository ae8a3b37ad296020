// Named parameters for SQL: `:mrn` becomes `$1`, so a script's output fills a parameterized
// statement and no value is ever spliced into SQL text. PostgreSQL's own lexical rules decide what
// is a parameter: nothing inside a string ('…', E'…', $tag$…$tag$), a quoted identifier ("…") or a
// comment (-- …, nested /* … */) counts, `::` is a cast and `:=` named notation. Pure: compiled
// once when the config is checked and again when the destination starts, never per message.

import { FerryError } from '../errors.ts';

export interface NamedSql {
  /** The statement with `$1`, `$2`, … in place of the names. */
  text: string;
  /** The name behind each positional parameter: names[0] fills $1. A repeated name reuses its number. */
  names: string[];
}

const NAME_START = /[\p{L}_]/u;
const NAME_PART = /[\p{L}\p{N}_]/u;
// Identifiers and keywords may contain `$` after their first character (PostgreSQL allows it).
const WORD_PART = /[\p{L}\p{N}_$]/u;
const DIGIT = /[0-9]/;

const invalid = (message: string): FerryError => new FerryError('CONFIG_INVALID', message);

/** Line and column (1-based) of an offset, for error messages about a multi-line statement. */
const position = (sql: string, offset: number): string => {
  const before = sql.slice(0, offset).split('\n');
  return `line ${before.length}, column ${before.at(-1)!.length + 1}`;
};

/**
 * Rewrites `:name` parameters to `$n`. Throws CONFIG_INVALID for an unterminated string, quoted
 * identifier or comment, for positional `$1` parameters (mixing the two would be ambiguous), for an
 * empty statement and for more than one statement (PostgreSQL prepares only one at a time).
 */
export const compileNamedSql = (sql: string): NamedSql => {
  const numbers = new Map<string, number>();
  const names: string[] = [];
  let text = '';
  let i = 0;
  let statementEnd = -1; // offset of a top-level `;`; anything but blanks and comments after it is a second statement
  let hasStatement = false;

  /** Index just past the quote closing a '…' or "…" run that starts at `start` (the opening quote). */
  const closeQuoted = (start: number, quote: string, backslashEscapes: boolean, what: string): number => {
    let j = start + 1;
    for (;;) {
      if (j >= sql.length) throw invalid(`sql: unterminated ${what} starting at ${position(sql, start)}`);
      const c = sql[j]!;
      if (backslashEscapes && c === '\\') j += 2;
      else if (c === quote && sql[j + 1] === quote) j += 2; // '' or "" is the quote itself
      else if (c === quote) return j + 1;
      else j++;
    }
  };

  const statementPart = (at: number): void => {
    if (statementEnd >= 0) throw invalid(`sql: only one statement is allowed; a second one starts at ${position(sql, at)}`);
    hasStatement = true;
  };

  while (i < sql.length) {
    const c = sql[i]!;
    const next = sql[i + 1];
    let end: number;

    if (c === '-' && next === '-') {
      const newline = sql.indexOf('\n', i);
      end = newline < 0 ? sql.length : newline;
    } else if (c === '/' && next === '*') {
      let depth = 0;
      end = i;
      do {
        if (end >= sql.length) throw invalid(`sql: unterminated /* comment starting at ${position(sql, i)}`);
        if (sql.startsWith('/*', end)) {
          depth++;
          end += 2;
        } else if (sql.startsWith('*/', end)) {
          depth--;
          end += 2;
        } else {
          end++;
        }
      } while (depth > 0);
    } else if (/\s/.test(c)) {
      end = i + 1;
    } else if (c === ';') {
      if (!hasStatement) throw invalid(`sql: empty statement before the ";" at ${position(sql, i)}`);
      statementEnd = i;
      end = i + 1;
    } else {
      statementPart(i);
      if (c === "'") {
        end = closeQuoted(i, "'", false, 'string');
      } else if (c === '"') {
        end = closeQuoted(i, '"', false, 'quoted identifier');
      } else if (c === ':' && next === ':') {
        end = i + 2;
      } else if (c === ':' && next !== undefined && NAME_START.test(next)) {
        end = i + 2;
        while (end < sql.length && NAME_PART.test(sql[end]!)) end++;
        const name = sql.slice(i + 1, end);
        let number = numbers.get(name);
        if (number === undefined) {
          names.push(name);
          number = names.length;
          numbers.set(name, number);
        }
        text += `$${number}`;
        i = end;
        continue;
      } else if (c === '$') {
        if (next !== undefined && DIGIT.test(next)) {
          throw invalid(`sql: use :name parameters, not positional ones like $${next} (at ${position(sql, i)})`);
        }
        // A dollar-quoted string: $$…$$ or $tag$…$tag$.
        const tag = /^\$(?:[\p{L}_][\p{L}\p{N}_]*)?\$/u.exec(sql.slice(i))?.[0];
        if (tag === undefined) {
          end = i + 1;
        } else {
          const close = sql.indexOf(tag, i + tag.length);
          if (close < 0) throw invalid(`sql: unterminated ${tag} string starting at ${position(sql, i)}`);
          end = close + tag.length;
        }
      } else if (WORD_PART.test(c) && !DIGIT.test(c)) {
        end = i + 1;
        while (end < sql.length && WORD_PART.test(sql[end]!)) end++;
        // E'…' (escape string syntax) is the one string where a backslash escapes the quote.
        if (end - i === 1 && (c === 'E' || c === 'e') && sql[end] === "'") end = closeQuoted(end, "'", true, 'string');
      } else {
        end = i + 1;
      }
    }
    text += sql.slice(i, end);
    i = end;
  }
  if (!hasStatement) throw invalid('sql: the statement is empty');
  return { text, names };
};
