// What holds a channel's destinations: each delivery that failed and is being retried in place (in a
// fifo destination, everything behind it waits), with its tries, last error and next try, and a Skip
// button that asks first. Rows are updated in place on every channel change, so a focused Skip button
// keeps its focus while the attempt count ticks.
import { post } from '../api.js';
import { confirmAction } from '../confirm.js';
import { h, time } from '../dom.js';
import { canOperate, roleNote } from '../session.js';

const keyOf = (d) => JSON.stringify([d.destination, d.id, d.output]);

/** `report(text, isError)` shows the outcome of a skip in the page's status line. */
export const blockedDeliveries = (channelName, report) => {
  const none = h('p', { class: 'muted' }, 'Nothing is held up: no delivery is being retried.');
  const body = h('tbody');
  const table = h(
    'table',
    { class: 'messages compact blocked' },
    h('caption', { class: 'visually-hidden' }, 'Deliveries being retried'),
    h('thead', {}, h('tr', {}, ['Destination', 'Message', 'Tries', 'Since', 'Last error', 'Next try', 'Action'].map((t) => h('th', { scope: 'col' }, t)))),
    body,
  );
  const element = h('div', {}, none, h('div', { class: 'scroll-x' }, table));
  const rows = new Map();
  const busy = new Set();

  const skip = async (delivery) => {
    const key = keyOf(delivery);
    const where = `${delivery.destination}${delivery.output > 0 ? ` (output ${delivery.output})` : ''}`;
    const ok = await confirmAction({
      title: `Skip message ${delivery.id} at ${where}?`,
      body:
        `It stops being retried and is recorded as failed (DELIVERY_SKIPPED, with your name); ${delivery.destination} goes on with the next message. ` +
        'Once the far end is fixed, resend it from its page.',
      confirm: 'Skip delivery',
    });
    if (!ok) return;
    busy.add(key);
    rows.get(key)?.update(delivery);
    try {
      const result = await post(`/api/channels/${encodeURIComponent(channelName)}/destinations/${encodeURIComponent(delivery.destination)}/skip`, {
        id: delivery.id,
        output: delivery.output,
      });
      report(`Skipped message ${delivery.id} at ${where} after ${result.attempts} tries.`, false);
    } catch (error) {
      report(`Could not skip message ${delivery.id}: ${error.code}: ${error.message}`, true);
    } finally {
      busy.delete(key);
      rows.get(key)?.update(delivery);
    }
  };

  const row = (initial) => {
    let delivery = initial;
    const key = keyOf(initial);
    const cells = { attempts: h('td', { class: 'num' }), since: h('td', { class: 'nowrap' }), error: h('td', { class: 'error-text' }), next: h('td', { class: 'nowrap' }) };
    const button = h('button', { type: 'button', class: 'skip', onclick: () => skip(delivery) }, 'Skip');
    const tr = h(
      'tr',
      { 'data-delivery': key },
      h('td', {}, initial.destination, initial.output > 0 ? ` #${initial.output}` : ''),
      h('td', {}, h('a', { href: `#/messages/${encodeURIComponent(initial.id)}` }, h('code', {}, initial.id))),
      cells.attempts,
      cells.since,
      cells.error,
      cells.next,
      h('td', {}, button),
    );
    const update = (next) => {
      delivery = next;
      cells.attempts.textContent = String(next.attempts);
      cells.since.replaceChildren(time(next.since));
      cells.error.textContent = next.error;
      cells.next.replaceChildren(next.nextAttemptAt ? time(next.nextAttemptAt) : 'trying now');
      const allowed = canOperate();
      button.disabled = busy.has(key) || !allowed;
      button.setAttribute('aria-label', `Skip message ${next.id} at ${next.destination}`);
      if (allowed) button.removeAttribute('title');
      else button.title = roleNote;
    };
    update(initial);
    return { tr, update };
  };

  /** Shows `blocked` (the channel object's list, oldest first), reusing the rows of deliveries still listed. */
  const update = (blocked = []) => {
    const listed = new Set(blocked.map(keyOf));
    for (const key of rows.keys()) if (!listed.has(key)) rows.delete(key);
    for (const delivery of blocked) {
      const existing = rows.get(keyOf(delivery));
      if (existing) existing.update(delivery);
      else rows.set(keyOf(delivery), row(delivery));
    }
    // Rows move only when the order changed: moving a row would take the focus off its button.
    const wanted = blocked.map((d) => rows.get(keyOf(d)).tr);
    if (wanted.length !== body.children.length || wanted.some((tr, i) => body.children[i] !== tr)) body.replaceChildren(...wanted);
    none.hidden = blocked.length > 0;
    table.hidden = blocked.length === 0;
  };

  return { element, update };
};
