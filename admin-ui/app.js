// The admin's shell: session, header, and hash routes (#/, #/channels/<name>, #/messages?…,
// #/messages/<id>). Hash routes keep the engine's side to two static paths (`/` and `/ui/*`) and make
// every page a link that can be bookmarked or pasted into a ticket.
import { onUnauthorized } from './api.js';
import { fill, h, problem } from './dom.js';
import { liveStatus, startLive, stopLive, subscribe } from './live.js';
import { forget, loadSession, logout, session } from './session.js';
import { renderChannel } from './views/channel.js';
import { renderDashboard } from './views/dashboard.js';
import { renderLogin } from './views/login.js';
import { renderMessage } from './views/message.js';
import { renderMessages } from './views/messages.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const user = document.getElementById('user');
const banner = document.getElementById('banner');
const live = document.getElementById('live-status');

const routes = [
  [/^\/?$/, renderDashboard],
  [/^\/channels\/([^/?]+)$/, renderChannel],
  [/^\/messages\/?$/, renderMessages],
  [/^\/messages\/([^/?]+)$/, renderMessage],
];

/** The page on screen: `{ view, param, page }`, where page is what the view returned. */
let current;
let entered = false;

const leave = () => {
  current?.page?.cleanup?.();
  current = undefined;
};

const route = () => {
  if (!session()) return;
  const hash = location.hash.replace(/^#/, '');
  // Only `#/…` is a route; other fragments (the skip link) are in-page anchors.
  if (hash !== '' && !hash.startsWith('/')) return;
  const [path, query = ''] = hash.split('?');
  for (const link of nav.querySelectorAll('a')) {
    const target = link.getAttribute('href').slice(1);
    const here = target === '/' ? path === '' || path === '/' : path.startsWith(target);
    if (here) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const params = { query: new URLSearchParams(query) };
  for (const [pattern, view] of routes) {
    const match = pattern.exec(path);
    if (!match) continue;
    params.param = match[1] && decodeURIComponent(match[1]);
    // Same page, new query (a filter or the next page of results): the view updates itself and
    // keeps focus where the user is.
    if (current?.view === view && current.param === params.param && current.page?.update) {
      current.page.update(params);
      return;
    }
    const moved = current !== undefined;
    leave();
    current = { view, param: params.param, page: view(main, params) };
    // After a navigation, put keyboard and screen-reader focus on the new page's heading.
    if (moved) main.querySelector('h1')?.focus();
    return;
  }
  leave();
  document.title = 'Not found — Ferry';
  fill(main, h('h1', { tabindex: -1 }, 'Not found'), h('p', {}, 'No such page. ', h('a', { href: '#/' }, 'Go to the dashboard.')));
};

const showLiveStatus = () => {
  const status = liveStatus();
  live.textContent = status === 'live' ? 'Live' : status === 'connecting' ? 'Connecting…' : session() ? 'Offline' : '';
  live.dataset.status = status;
};

const renderUser = () => {
  const s = session();
  nav.hidden = !s;
  if (!s) {
    fill(user);
    fill(banner);
    return;
  }
  if (s.open) {
    fill(user, h('span', { class: 'who' }, 'open mode (admin)'));
    fill(
      banner,
      h(
        'p',
        { class: 'banner', role: 'note' },
        h('strong', {}, 'No users are configured. '),
        'The admin is open without a login, so it listens on loopback (127.0.0.1) only. Add a user with ',
        h('code', {}, 'ferry user add <name> --role admin'),
        ' to require a login and allow other addresses.',
      ),
    );
    return;
  }
  fill(banner);
  fill(
    user,
    h('span', { class: 'who' }, h('span', { class: 'username' }, s.username), ' ', h('span', { class: 'role' }, s.role)),
    h('button', { type: 'button', class: 'link-button', onclick: signOut }, 'Log out'),
  );
};

const enter = async (afterLogin = false) => {
  entered = true;
  renderUser();
  route();
  if (afterLogin) main.querySelector('h1')?.focus();
  try {
    await startLive();
  } catch (error) {
    if (error.status !== 401) fill(banner, problem(error));
  }
};

const showLogin = (reason) => {
  leave();
  entered = false;
  forget();
  stopLive();
  renderUser();
  document.title = 'Log in — Ferry';
  renderLogin(main, { reason, onLogin: () => enter(true) });
};

async function signOut() {
  await logout().catch(() => {});
  showLogin();
}

onUnauthorized(() => {
  // Several calls can fail at once when a session expires; show the form once.
  if (entered) showLogin('Your session has ended. Log in again to continue.');
});

subscribe((change) => {
  if (change.type === 'status') showLiveStatus();
});

window.addEventListener('hashchange', route);

document.getElementById('skip-link').addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});

const boot = async () => {
  try {
    if (await loadSession()) await enter();
    else showLogin();
  } catch (error) {
    document.title = 'Ferry admin';
    fill(main, h('h1', {}, 'Ferry admin'), problem(error));
  }
};

boot();
