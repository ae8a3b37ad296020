// Hides secrets in config shown by the admin API: values of keys that name a secret (password,
// token, secret, authorization, cookie, api key — also as a suffix: clientSecret, accessToken),
// and the password in a URL's user info (rediss://user:password@host). Everything else, paths of
// key files included, is shown as configured.

export const REDACTED = '[redacted]';

const SECRET_KEY = /(password|passphrase|secret|token|apikey|api-key|api_key|authorization|cookie)s?$/i;
const URL_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s]*@/i;

export const redactSecrets = (value: unknown, key = ''): unknown => {
  if (typeof value === 'string') {
    if (value !== '' && SECRET_KEY.test(key)) return REDACTED;
    return value.replace(URL_PASSWORD, `$1${REDACTED}@`);
  }
  if (Array.isArray(value)) return value.map((item) => redactSecrets(item, key));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactSecrets(v, k)]));
  }
  return value;
};
