import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

// better-sqlite3, in the release that is safe on the running Node. 12.x (node::ObjectWrap) aborts
// the whole process on Node 24 when V8 collects one of its statements ("Assertion failed: (env) !=
// nullptr" in RemoveEnvironmentCleanupHook; seen here running the message-store tests). 13.x
// (Node-API, prebuilt) fixes that but needs Node 22: its binary crashes Node 20 on load, so it must
// never be tried there. package.json installs both, under two names; the API is the same.

const NODE_MAJOR = Number(process.versions.node.split('.')[0]);

export const Database: typeof BetterSqlite3 = createRequire(import.meta.url)(NODE_MAJOR >= 22 ? 'better-sqlite3-v13' : 'better-sqlite3');

export type SqliteDatabase = BetterSqlite3.Database;
