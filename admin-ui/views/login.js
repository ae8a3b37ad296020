// Username and password → POST /api/login. Wrong credentials and rate limiting are shown in the form.
import { fill, h } from '../dom.js';
import { login } from '../session.js';

const explain = (error) => {
  if (error.status === 401) return 'Wrong username or password.';
  if (error.code === 'AUTH_LOGIN_BUSY') return 'Another login for this user or from this address is under way. Try again in a moment.';
  if (error.status === 429) {
    const seconds = error.retryAfter;
    const wait = !seconds ? ' Try again later.' : seconds < 120 ? ` Try again in ${seconds} seconds.` : ` Try again in ${Math.ceil(seconds / 60)} minutes.`;
    return `Too many failed attempts.${wait}`;
  }
  return `${error.code}: ${error.message}`;
};

/** `reason` is shown above the form (e.g. after a session ended); `onLogin` runs once logged in. */
export const renderLogin = (main, { reason, onLogin }) => {
  const username = h('input', { id: 'login-username', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const message = h('p', { id: 'login-error', class: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log in');

  const onsubmit = async (event) => {
    event.preventDefault();
    submit.disabled = true;
    message.textContent = '';
    try {
      await login(username.value.trim(), password.value);
      onLogin();
    } catch (error) {
      message.textContent = explain(error);
      password.value = '';
      password.setAttribute('aria-invalid', 'true');
      password.focus();
      submit.disabled = false;
    }
  };

  fill(
    main,
    h(
      'section',
      { class: 'login', 'aria-labelledby': 'login-title' },
      h('h1', { id: 'login-title', tabindex: -1 }, 'Log in to Ferry'),
      reason ? h('p', { class: 'notice' }, reason) : null,
      h(
        'form',
        { onsubmit, 'aria-describedby': 'login-error' },
        h('label', { for: 'login-username' }, 'Username'),
        username,
        h('label', { for: 'login-password' }, 'Password'),
        password,
        message,
        submit,
      ),
    ),
  );
  username.focus();
};
