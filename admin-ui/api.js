// The one way the UI talks to the engine: the admin API (docs/admin-api.md), JSON over fetch with the
// session cookie. State-changing calls carry the session's CSRF token; a 401 anywhere means the
// session is gone, so the app is told to show the login form.

class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    /** Seconds, from a 429's Retry-After. */
    this.retryAfter = retryAfter;
  }
}

let csrfToken = '';
let unauthorized = () => {};

/** The token from POST /api/login or GET /api/session ('' in open mode, where none is needed). */
export const setCsrfToken = (token) => {
  csrfToken = token ?? '';
};

/** Called on any 401 except from calls made with `{ expect401: true }` (login, the session probe). */
export const onUnauthorized = (handler) => {
  unauthorized = handler;
};

/** `/api/messages` + `{ channel: 'a', q: '' }` → `/api/messages?channel=a` (empty values left out). */
export const withQuery = (path, params = {}) => {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
};

export const request = async (path, { method = 'GET', body, expect401 = false } = {}) => {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch (cause) {
    throw new ApiError(0, 'NETWORK', `the engine did not answer (${cause.message}); is it running?`);
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (response.ok) return data;
  const error = data?.error ?? {};
  const retryAfter = Number(response.headers.get('Retry-After')) || undefined;
  const failure = new ApiError(response.status, error.code ?? `HTTP_${response.status}`, error.message ?? response.statusText, retryAfter);
  if (response.status === 401 && !expect401) unauthorized(failure);
  throw failure;
};

export const get = (path, params) => request(withQuery(path, params));
export const post = (path, body) => request(path, { method: 'POST', body: body ?? {} });
