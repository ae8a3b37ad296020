// Store-and-forward relay: POST {"method": "PUT", "url": "https://…", "body": …} to this channel's
// HTTPS path. Ferry answers 200 once the request is stored, then delivers `body` to `url` through
// the channel's https destination, with its retries, backoff and circuit breaker: the caller never
// waits for (or loses a request to) an endpoint that is down. The destination's `allowDynamicUrl`
// lists where requests may go; a URL outside it errors the message. See docs/examples/relay.yaml.

interface RelayRequest {
  method?: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  /** A string is sent as it is; anything else as JSON. */
  body: unknown;
  headers?: Record<string, string>;
}

export default function (msg: Message, ctx: Context) {
  const request = JSON.parse(msg.text) as RelayRequest;
  if (typeof request.url !== 'string') throw new Error('relay: the request has no "url"');
  const text = typeof request.body === 'string';
  ctx.deliver(text ? (request.body as string) : JSON.stringify(request.body ?? null), {
    url: request.url,
    method: request.method ?? 'POST',
    headers: { 'Content-Type': text ? 'text/plain; charset=utf-8' : 'application/json', ...request.headers },
  });
  ctx.log(`relay ${request.method ?? 'POST'} ${request.url}`);
  return null; // everything to send went out through ctx.deliver
}
