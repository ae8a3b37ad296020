// One message: summary, every stage with its outcome, the script's log, the received content as a
// table of HL7 segments and fields (PID-5, PID-5.1 …) and as raw text, the outputs, and Resend.
import { get, post } from '../api.js';
import { confirmAction } from '../confirm.js';
import { badge, fill, h, problem, time } from '../dom.js';
import { hl7Table } from '../hl7.js';
import { canOperate, roleNote } from '../session.js';

const TRANSFORM_STAGE = 'transform';

const messageLink = (id) => h('a', { href: `#/messages/${encodeURIComponent(id)}` }, h('code', {}, id));

/** ER7 shows one segment a line; senders terminate segments with CR, which a <pre> would not break on. */
const asLines = (text) => text.replace(/\r\n?/g, '\n');

const section = (id, title, ...children) =>
  h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id }, title), ...children);

const summary = (m) => {
  const facts = [
    ['Channel', h('a', { href: `#/channels/${encodeURIComponent(m.channel)}` }, m.channel)],
    ['Status', badge(m.status)],
    ['Received', time(m.receivedAt)],
    ['Last change', time(m.updatedAt)],
    ['Source', m.source],
    ['Type', m.messageType],
    ['Control id', m.controlId],
    ['Sender', m.sender],
    ['Character set', m.charset],
    // A parent is either the original of a resend or the message a channel destination handed on.
    [/^resend\b/.test(m.source) ? 'Resent from' : 'Handed on from', m.parentId ? messageLink(m.parentId) : null],
    ['Error', m.error ? h('span', { class: 'error-text' }, m.error) : null],
  ].filter(([, value]) => value !== null && value !== undefined && value !== '');
  return h('dl', { class: 'facts wide' }, facts.map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
};

const stagesTable = (stages) =>
  stages.length === 0
    ? h('p', { class: 'muted' }, 'No stage has run yet.')
    : h(
        'table',
        { class: 'stages' },
        h('caption', { class: 'visually-hidden' }, 'Stages'),
        h('thead', {}, h('tr', {}, ['Stage', 'Status', 'Attempts', 'Updated', 'Error', 'Content'].map((t) => h('th', { scope: 'col' }, t)))),
        h(
          'tbody',
          {},
          stages.map((s) =>
            h(
              'tr',
              {},
              h('th', { scope: 'row' }, h('code', {}, s.stage)),
              h('td', {}, badge(s.status)),
              h('td', { class: 'num' }, s.attempts),
              h('td', { class: 'nowrap' }, time(s.updatedAt)),
              h('td', { class: 'error-text' }, s.error ?? ''),
              h(
                'td',
                {},
                s.content
                  ? h('details', {}, h('summary', {}, s.stage === TRANSFORM_STAGE ? 'Script log' : 'Response'), h('pre', {}, asLines(s.content)))
                  : h('span', { class: 'muted' }, '—'),
              ),
            ),
          ),
        ),
      );

const fieldsTable = (text, caption) => {
  const segments = hl7Table(text);
  if (!segments) return h('p', { class: 'muted' }, 'This content is not HL7 v2 (ER7): see the raw content.');
  return h(
    'table',
    { class: 'hl7' },
    h('caption', { class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Position'), h('th', { scope: 'col' }, 'Value'))),
    segments.map((segment) =>
      h(
        'tbody',
        { 'data-segment': segment.label },
        h('tr', { class: 'segment' }, h('th', { scope: 'rowgroup', colspan: 2 }, segment.label)),
        segment.rows.map((row) =>
          h(
            'tr',
            { class: `depth-${row.depth}` },
            h('th', { scope: 'row', class: 'position' }, row.position),
            h('td', { class: row.composite ? 'value composite' : 'value' }, row.value),
          ),
        ),
      ),
    ),
  );
};

/** The segment table with a filter box: typing PID-5, OBX or an MRN keeps only matching rows. */
const fieldsPanel = (text) => {
  const table = fieldsTable(text, 'Received content by segment and field');
  if (table.tagName !== 'TABLE') return table;
  const filter = h('input', { id: 'field-filter', type: 'search', autocomplete: 'off', placeholder: 'PID-5, OBX, a value…' });
  const count = h('span', { class: 'muted', role: 'status' });
  filter.addEventListener('input', () => {
    const needle = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const group of table.tBodies) {
      let any = false;
      for (const row of group.rows) {
        if (row.classList.contains('segment')) continue;
        const match = !needle || row.textContent.toLowerCase().includes(needle);
        row.hidden = !match;
        if (match) shown++;
        any ||= match;
      }
      group.hidden = !any;
    }
    count.textContent = needle ? `${shown} matching` : '';
  });
  return [h('div', { class: 'field inline' }, h('label', { for: 'field-filter' }, 'Filter fields'), filter, count), table];
};

export const renderMessage = (main, { param: id }) => {
  document.title = `Message ${id} — Ferry`;
  const flash = h('p', { class: 'flash', role: 'status' });
  const statusSlot = h('span');
  const resend = h('button', { type: 'button', class: 'primary', disabled: true }, 'Resend');
  const body = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));

  fill(
    main,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/messages' }, 'Messages'), ' / ', h('span', { 'aria-current': 'page' }, id)),
    h('div', { class: 'page-head' }, h('h1', { tabindex: -1 }, 'Message ', h('code', {}, id)), statusSlot, h('div', { class: 'channel-actions' }, resend)),
    flash,
    body,
  );

  const show = (m) => {
    fill(statusSlot, badge(m.status));
    const transform = m.stages.find((s) => s.stage === TRANSFORM_STAGE);
    fill(
      body,
      h('div', { class: 'columns columns-2-3' }, section('message-summary', 'Summary', summary(m)), section('message-stages', 'Stages', stagesTable(m.stages))),
      transform?.content ? section('message-log', 'Script log', h('pre', { class: 'log' }, asLines(transform.content))) : null,
      section(
        'message-raw',
        'Raw content',
        h('pre', { class: 'raw', tabindex: 0, 'aria-label': 'Raw received content' }, asLines(m.text)),
        h('p', {}, h('a', { href: `data:application/octet-stream;base64,${m.raw}`, download: `${m.id}.hl7` }, 'Download the received bytes'), ` (${m.charset})`),
      ),
      section('message-fields', 'HL7 segments and fields', fieldsPanel(m.text)),
      m.outputs.length
        ? section(
            'message-outputs',
            `Outputs (${m.outputs.length})`,
            m.outputs.map((output, i) => h('details', { class: 'output' }, h('summary', {}, `Output ${i + 1}`), h('pre', {}, asLines(output)))),
          )
        : null,
    );
    resend.disabled = !canOperate();
    resend.title = canOperate() ? '' : roleNote;
    resend.onclick = () => resendMessage(m);
  };

  const resendMessage = async (m) => {
    const confirmed = await confirmAction({
      title: `Resend message ${m.controlId ?? m.id}?`,
      body: `Its received bytes enter ${m.channel} again as a new message and go through the script and every destination; receivers may get it twice.`,
      confirm: 'Resend',
    });
    if (!confirmed) return;
    resend.disabled = true;
    try {
      const result = await post(`/api/messages/${encodeURIComponent(m.id)}/resend`);
      fill(flash, 'Resent as new message ', messageLink(result.id), '.');
      flash.classList.remove('flash-error');
    } catch (error) {
      fill(flash, `Could not resend: ${error.code}: ${error.message}`);
      flash.classList.add('flash-error');
    } finally {
      resend.disabled = !canOperate();
    }
  };

  get(`/api/messages/${encodeURIComponent(id)}`).then(show, (error) => fill(body, problem(error)));
};
