// Building DOM without innerHTML: message content and error texts come from outside (HL7 senders,
// scripts), so every value goes in as a text node and nothing is ever parsed as markup.

const SVG = 'http://www.w3.org/2000/svg';

/**
 * h('a', { href: '#/', class: 'x', onclick: fn }, 'text', child…): attributes starting with `on` become
 * listeners, `false`/`null`/`undefined` attributes are left out, children may be nested arrays.
 */
export const h = (tag, attributes = {}, ...children) => build(document.createElement(tag), attributes, children);

/** The same for SVG elements (they need their namespace). */
export const s = (tag, attributes = {}, ...children) => build(document.createElementNS(SVG, tag), attributes, children);

const build = (element, attributes, children) => {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on') && typeof value === 'function') element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
};

const append = (element, children) => {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
};

/** Replaces everything inside `element`. */
export const fill = (element, ...children) => {
  element.replaceChildren();
  append(element, children);
  return element;
};

const pad = (n) => String(n).padStart(2, '0');

/** Local time, second precision, sortable: 2026-11-23 03:47:30. Empty for no value. */
const formatTime = (iso) => {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
};

/** A <time> element with the local time as text and the exact ISO instant as its datetime. */
export const time = (iso) => (iso ? h('time', { datetime: iso, title: iso }, formatTime(iso)) : '');

export const formatCount = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : '–');

/** The state/status badge: colour plus the word itself, never colour alone. */
export const badge = (word) => h('span', { class: `badge badge-${word}` }, word);

/** A message shown where a page's content would be, for load failures. */
export const problem = (error) =>
  h('p', { class: 'problem', role: 'alert' }, error?.code ? `${error.code}: ${error.message}` : String(error?.message ?? error));
