// Builtins captured when this module is evaluated, for code that must behave the same whatever a
// channel script does to the globals it shares a context with. Inside the sandbox this module is
// bundled into the prelude and evaluated when the prelude loads, before any script code runs: a script
// that later replaces Array.prototype.includes, String.prototype.toLowerCase, RegExp.prototype.exec,
// JSON.stringify, Object.keys, WeakSet.prototype.has … (on one message; the context lives on between
// messages) changes nothing these do. In the engine they are simply the builtins.
//
// Methods are "uncurried" (`slice(text, 0, 5)` for `text.slice(0, 5)`) through a `call.bind` made
// here, so calling one looks nothing up on a prototype. What calling them cannot protect against is
// listed where it matters: prototype setters on fresh objects and arrays (use `record` and `list`),
// iteration (`for…of` and spread call Array.prototype[Symbol.iterator]; use index loops), `instanceof`
// (use `isInstance`), and the `then` a promise resolution looks up on the resolved value (`record`).

type Uncurried = (self: unknown, ...args: unknown[]) => unknown;
const uncurry = Function.prototype.bind.bind(Function.prototype.call) as (method: (...args: never[]) => unknown) => Uncurried;

const exec = uncurry(RegExp.prototype.exec);
const slice = uncurry(String.prototype.slice);
const indexOf = uncurry(String.prototype.indexOf);
const charCodeAt = uncurry(String.prototype.charCodeAt);
const toLowerCase = uncurry(String.prototype.toLowerCase);
const toUpperCase = uncurry(String.prototype.toUpperCase);
const symbolToString = uncurry(Symbol.prototype.toString);
const weakSetHas = uncurry(WeakSet.prototype.has);
const weakSetAdd = uncurry(WeakSet.prototype.add);
const hasInstance = uncurry(Function.prototype[Symbol.hasInstance]);
const setPrototypeOf = Object.setPrototypeOf;

export const ErrorClass = Error;
export const PromiseClass = Promise;
export const WeakSetClass = WeakSet;
export const StringOf = String;
export const jsonStringify = JSON.stringify;
export const isArray = Array.isArray;
export const keysOf = Object.keys;
export const freeze = Object.freeze;
export const isFiniteNumber = Number.isFinite;

/** `pattern.test(text)`, through RegExp.prototype.exec as it was (test() itself calls `this.exec`). */
export const matches = (pattern: RegExp, text: string): boolean => exec(pattern, text) !== null;
export const sliceOf = (text: string, start: number, end?: number): string => slice(text, start, end) as string;
export const indexIn = (text: string, search: string): number => indexOf(text, search) as number;
export const codeUnitAt = (text: string, index: number): number => charCodeAt(text, index) as number;
export const lowerCase = (text: string): string => toLowerCase(text) as string;
export const upperCase = (text: string): string => toUpperCase(text) as string;
export const describeSymbol = (symbol: symbol): string => symbolToString(symbol) as string;
export const inWeakSet = (set: WeakSet<object>, value: object): boolean => weakSetHas(set, value) as boolean;
export const addToWeakSet = (set: WeakSet<object>, value: object): void => void weakSetAdd(set, value);
/** `value instanceof type` without consulting a `Symbol.hasInstance` a script defined on `type`. */
export const isInstance = (value: unknown, type: abstract new (...args: never[]) => unknown): boolean => hasInstance(type, value) as boolean;

/**
 * `fields` without a prototype: assigning to it later cannot run a setter a script put on
 * Object.prototype, reading a missing key cannot find one it put there, and a promise resolved with
 * it finds no `then`. (An object literal alone is safe only for the keys it defines.)
 */
export const record = <T extends object>(fields: T): T => setPrototypeOf(fields, null) as T;

/** An empty array without a prototype: `items[items.length] = x` cannot run a setter on Array.prototype. */
export const list = <T>(): T[] => setPrototypeOf([], null) as T[];
