// The message log: filter by channel, status and time, full-text search over content, newest first,
// paged with the API's cursor; the messages shown can be resent together (e.g. all errors after a
// receiver was fixed). The filters live in the URL (#/messages?q=MRN123&channel=…), so a
// search can be bookmarked and the browser's Back button returns to the previous page of results.
import { get, post, withQuery } from '../api.js';
import { confirmAction } from '../confirm.js';
import { badge, fill, h, problem, time } from '../dom.js';
import { channelList } from '../live.js';
import { canOperate, roleNote } from '../session.js';

const STATUSES = ['received', 'filtered', 'transformed', 'queued', 'sent', 'error'];
const PAGE_SIZE = 50;
const FILTERS = ['q', 'channel', 'status', 'from', 'to'];

/** A datetime-local value (local time, no zone) as the ISO instant the API takes. */
const toIso = (local) => {
  if (!local) return undefined;
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
};

const field = (id, label, control) => h('div', { class: 'field' }, h('label', { for: id }, label), control);

export const renderMessages = (main, initial) => {
  document.title = 'Messages — Ferry';
  const q = h('input', { id: 'filter-q', name: 'q', type: 'search', placeholder: 'MRN, name, control id…', autocomplete: 'off' });
  const channel = h('select', { id: 'filter-channel', name: 'channel' }, h('option', { value: '' }, 'All channels'));
  const status = h('select', { id: 'filter-status', name: 'status' }, h('option', { value: '' }, 'Any status'), STATUSES.map((s) => h('option', { value: s }, s)));
  const from = h('input', { id: 'filter-from', name: 'from', type: 'datetime-local', step: 1 });
  const to = h('input', { id: 'filter-to', name: 'to', type: 'datetime-local', step: 1 });
  const controls = { q, channel, status, from, to };
  const results = h('div', { class: 'results' });
  const count = h('p', { class: 'result-count', role: 'status' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Result pages' });
  const resendAll = h('button', { type: 'button', hidden: true }, 'Resend shown');
  const flash = h('p', { class: 'flash', role: 'status' });
  let shown = [];

  // Cursors of the pages before this one, for "Newer": the API pages only towards older messages.
  let trail = [];
  let query = new URLSearchParams();
  let loading = 0;

  const setChannels = (names) => {
    const chosen = channel.value || query.get('channel') || '';
    const all = [...new Set([...names, chosen].filter(Boolean))].sort();
    fill(channel, h('option', { value: '' }, 'All channels'), all.map((name) => h('option', { value: name }, name)));
    channel.value = chosen;
  };

  const go = (params) => {
    const hash = withQuery('#/messages', params);
    if (location.hash === hash) load();
    else location.hash = hash;
  };

  const filters = () => Object.fromEntries(FILTERS.map((key) => [key, query.get(key) ?? '']));

  const onsubmit = (event) => {
    event.preventDefault();
    trail = [];
    go(Object.fromEntries(FILTERS.map((key) => [key, controls[key].value.trim()])));
  };

  const row = (m) =>
    h(
      'tr',
      { 'data-id': m.id },
      h('td', { class: 'nowrap' }, h('a', { href: `#/messages/${encodeURIComponent(m.id)}`, title: `Message ${m.id}` }, time(m.receivedAt))),
      h('td', {}, m.channel),
      h('td', {}, badge(m.status)),
      h('td', {}, m.messageType ?? ''),
      h('td', {}, m.controlId ?? ''),
      h('td', {}, m.sender ?? ''),
      h('td', { class: 'muted' }, m.source),
      h('td', { class: 'error-text clip', title: m.error ?? '' }, m.error ?? ''),
    );

  const table = (items) =>
    h(
      'table',
      { class: 'messages' },
      h('caption', { class: 'visually-hidden' }, 'Messages, newest first'),
      h('thead', {}, h('tr', {}, ['Received', 'Channel', 'Status', 'Type', 'Control id', 'Sender', 'Source', 'Error'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, items.map(row)),
    );

  const load = async () => {
    const mine = ++loading;
    results.setAttribute('aria-busy', 'true');
    const f = filters();
    try {
      const page = await get('/api/messages', {
        q: f.q,
        channel: f.channel,
        status: f.status,
        from: toIso(f.from),
        to: toIso(f.to),
        limit: PAGE_SIZE,
        cursor: query.get('cursor') ?? undefined,
      });
      if (mine !== loading) return;
      shown = page.items;
      resendAll.hidden = shown.length === 0;
      resendAll.textContent = `Resend ${shown.length} shown`;
      resendAll.disabled = !canOperate();
      resendAll.title = canOperate() ? '' : roleNote;
      fill(results, page.items.length ? table(page.items) : h('p', { class: 'muted empty' }, 'No messages match.'));
      const first = query.get('cursor') ? 'Older messages' : 'Newest messages';
      count.textContent = page.items.length
        ? `${first}: ${page.items.length} shown${page.nextCursor ? ', more older' : ''}.`
        : 'No messages match.';
      const newer = query.has('cursor')
        ? h('button', { type: 'button', onclick: () => go({ ...f, cursor: trail.pop() }) }, '← Newer')
        : null;
      const older = page.nextCursor
        ? h('button', { type: 'button', onclick: () => {
            trail.push(query.get('cursor') ?? '');
            go({ ...f, cursor: page.nextCursor });
          } }, 'Older →')
        : null;
      fill(pager, newer, older);
    } catch (error) {
      if (mine !== loading) return;
      fill(results, problem(error));
      count.textContent = '';
      fill(pager);
    } finally {
      if (mine === loading) results.setAttribute('aria-busy', 'false');
    }
  };

  resendAll.onclick = async () => {
    const messages = shown;
    const channels = [...new Set(messages.map((m) => m.channel))].join(', ');
    const confirmed = await confirmAction({
      title: `Resend ${messages.length} messages?`,
      body: `Their received bytes enter ${channels} again as new messages, oldest first, and go through the script and every destination; receivers may get them twice.`,
      confirm: 'Resend all',
    });
    if (!confirmed) return;
    resendAll.disabled = true;
    try {
      const { resent, failed } = await post('/api/messages/resend', { ids: messages.map((m) => m.id) });
      const failures = failed.map((f) => `${f.id}: ${f.error.code}: ${f.error.message}`).join('; ');
      fill(flash, `Resent ${resent.length} of ${messages.length} as new messages.${failed.length ? ` Not resent: ${failures}` : ''}`);
      flash.classList.toggle('flash-error', failed.length > 0);
    } catch (error) {
      fill(flash, `Could not resend: ${error.code}: ${error.message}`);
      flash.classList.add('flash-error');
    } finally {
      resendAll.disabled = !canOperate();
    }
  };

  const update = ({ query: next }) => {
    query = next;
    for (const key of FILTERS) controls[key].value = query.get(key) ?? '';
    setChannels(channelList().map((c) => c.name));
    load();
  };

  fill(
    main,
    h('div', { class: 'page-head' }, h('h1', { tabindex: -1 }, 'Messages')),
    h(
      'form',
      { class: 'filters', role: 'search', 'aria-label': 'Filter messages', onsubmit },
      field('filter-q', 'Search content', q),
      field('filter-channel', 'Channel', channel),
      field('filter-status', 'Status', status),
      field('filter-from', 'Received from', from),
      field('filter-to', 'Received until', to),
      h('div', { class: 'field buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Search'), h('a', { href: '#/messages', class: 'button' }, 'Clear')),
    ),
    h('div', { class: 'result-head' }, count, resendAll),
    flash,
    results,
    pager,
  );
  update(initial);
  // Channel names for the filter, if the dashboard's list has not been read yet.
  if (channelList().length === 0) get('/api/channels').then((list) => setChannels(list.map((c) => c.name)), () => {});

  return { update };
};
