import test from 'ava';
import { compileNamedSql } from '../../engine/destinations/named-sql.ts';
import { isFerryError } from '../../engine/errors.ts';

// The tokenizer is pure: each row is SQL in, positional SQL and parameter names out.

const compiles: Array<[string, string, string, string[]]> = [
  ['plain insert', 'INSERT INTO patients (mrn, name) VALUES (:mrn, :name)', 'INSERT INTO patients (mrn, name) VALUES ($1, $2)', ['mrn', 'name']],
  ['repeated name reuses its number', 'UPDATE t SET a = :x, b = :y WHERE c = :x', 'UPDATE t SET a = $1, b = $2 WHERE c = $1', ['x', 'y']],
  ['casts are not parameters', 'SELECT :a::text, :b::jsonb, c::int FROM t', 'SELECT $1::text, $2::jsonb, c::int FROM t', ['a', 'b']],
  ['a cast right after a name', 'VALUES (:born::date)', 'VALUES ($1::date)', ['born']],
  ["':x' inside a string", "INSERT INTO t VALUES (':x is text', :x)", "INSERT INTO t VALUES (':x is text', $1)", ['x']],
  ["'' inside a string", "SELECT 'it''s :not', :yes", "SELECT 'it''s :not', $1", ['yes']],
  ['E-string with an escaped quote', "SELECT E'a\\':no', :yes", "SELECT E'a\\':no', $1", ['yes']],
  ['E-string ending in an escaped backslash', "SELECT e'\\\\', :yes", "SELECT e'\\\\', $1", ['yes']],
  ['backslash in a standard string escapes nothing', "SELECT 'C:\\', :yes", "SELECT 'C:\\', $1", ['yes']],
  ['quoted identifier', 'SELECT ":odd"":name" FROM t WHERE a = :a', 'SELECT ":odd"":name" FROM t WHERE a = $1', ['a']],
  ['line comment', 'SELECT :a -- not :b\n, :c', 'SELECT $1 -- not :b\n, $2', ['a', 'c']],
  ['nested block comment', 'SELECT /* :x /* :y */ :z */ :a', 'SELECT /* :x /* :y */ :z */ $1', ['a']],
  ['dollar-quoted string', 'SELECT $$ :x $$, $fn$ :y $ $fn$, :a', 'SELECT $$ :x $$, $fn$ :y $ $fn$, $1', ['a']],
  ['$ inside an identifier', 'SELECT a$1 FROM t WHERE b = :b', 'SELECT a$1 FROM t WHERE b = $1', ['b']],
  ['named notation := and a lone colon', 'SELECT f(a := :a), arr[1 : 2]', 'SELECT f(a := $1), arr[1 : 2]', ['a']],
  ['unicode and underscores in names', 'VALUES (:naïve_1, :_x)', 'VALUES ($1, $2)', ['naïve_1', '_x']],
  ['no parameters at all', 'DELETE FROM t', 'DELETE FROM t', []],
  ['one trailing semicolon and comment', 'INSERT INTO t VALUES (:a);  -- done\n', 'INSERT INTO t VALUES ($1);  -- done\n', ['a']],
  [
    'ON CONFLICT with ferry_id',
    'INSERT INTO t (ferry_id, mrn) VALUES (:ferry_id, :mrn) ON CONFLICT (ferry_id) DO NOTHING',
    'INSERT INTO t (ferry_id, mrn) VALUES ($1, $2) ON CONFLICT (ferry_id) DO NOTHING',
    ['ferry_id', 'mrn'],
  ],
];

for (const [title, sql, text, names] of compiles) {
  test(`compiles: ${title}`, (t) => {
    t.deepEqual(compileNamedSql(sql), { text, names });
  });
}

const refuses: Array<[string, string, RegExp]> = [
  ['unterminated string', "INSERT INTO t VALUES ('abc, :a)", /unterminated string starting at line 1, column 23/],
  ['unterminated E-string (escaped last quote)', "SELECT E'abc\\'", /unterminated string/],
  ['unterminated quoted identifier', 'SELECT "abc FROM t', /unterminated quoted identifier/],
  ['unterminated block comment', 'SELECT 1 /* /* */', /unterminated \/\* comment/],
  ['unterminated dollar quote', 'SELECT $x$ abc $y$', /unterminated \$x\$ string/],
  ['positional parameter', 'SELECT $1, :a', /use :name parameters, not positional ones like \$1/],
  ['two statements', 'INSERT INTO t VALUES (:a);\nDELETE FROM t', /only one statement is allowed; a second one starts at line 2, column 1/],
  ['empty', '  -- nothing\n', /the statement is empty/],
  ['only a semicolon', ' ;', /empty statement/],
];

for (const [title, sql, message] of refuses) {
  test(`refuses: ${title}`, (t) => {
    const error = t.throws(() => compileNamedSql(sql));
    t.true(isFerryError(error));
    t.like(error, { code: 'CONFIG_INVALID' });
    t.regex(error!.message, message);
  });
}
