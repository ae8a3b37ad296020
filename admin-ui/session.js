// Who is logged in and what their role allows. The engine enforces roles on every call; the UI only
// mirrors them so a viewer sees disabled buttons instead of a 403 after clicking.
import { request, setCsrfToken } from './api.js';

const ranks = { viewer: 1, operator: 2, admin: 3 };

/** `{ username, role, csrfToken, open }`, or null while logged out. */
let current = null;

export const session = () => current;

const remember = (value) => {
  current = value;
  setCsrfToken(value?.csrfToken);
  return value;
};

/** The live session, or null when the engine answers 401. */
export const loadSession = async () => {
  try {
    return remember(await request('/api/session', { expect401: true }));
  } catch (error) {
    if (error.status === 401) return remember(null);
    throw error;
  }
};

export const login = async (username, password) =>
  remember(await request('/api/login', { method: 'POST', body: { username, password }, expect401: true }));

export const logout = async () => {
  try {
    await request('/api/logout', { method: 'POST', expect401: true });
  } finally {
    remember(null);
  }
};

/** Forgets the session after the engine said 401 (expired, or logged out elsewhere). */
export const forget = () => remember(null);

/** Operators and admins start/stop channels and resend messages. */
export const canOperate = () => (ranks[current?.role] ?? 0) >= ranks.operator;

export const roleNote = 'Needs the operator or admin role';
