// The HTTP pusher: a path on the engine HTTPS listener taking Crossbar-style pushes
// `{"topic": "…", "args": […], "kwargs": {…}}` from plain web apps (curl will do). It is the https
// receiver with a stricter body: the same auth (token or hmac), limits, ids and "200 once stored"
// answer, and a 400 naming what is wrong with a body that is not a push. An accepted push is a
// message like any other: logged, searchable, and transformed by the channel's script before its
// websocket destination publishes it.
import type { PusherSourceConfig } from '../config.ts';
import type { HttpsMount } from '../http/https-listener.ts';
import { pushBodyProblem } from '../push/event.ts';
import { httpsSource, type HttpsSource, type HttpsSourceDeps } from './https.ts';

export const pusherSource = (config: PusherSourceConfig, deps: HttpsSourceDeps & { mount: HttpsMount }): HttpsSource =>
  httpsSource({ ...config, type: 'https' }, { ...deps, validate: pushBodyProblem, label: 'pusher' });
