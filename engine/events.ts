import type { MessageStore } from './store/message-store.ts';

// The engine's in-process event bus: what changed, not what it now is (listeners read the current
// state themselves, so a burst of changes to one thing can be coalesced into one read). Fed by
// channel start/stop and by every committed message log write; read by the admin event stream.

export type EngineEvent =
  | { kind: 'channel'; channel: string }
  /** A message was logged or changed status; published after the write committed. */
  | { kind: 'message'; id: string };

export interface EventBus {
  publish(event: EngineEvent): void;
  /** Returns the unsubscribe function. */
  subscribe(listener: (event: EngineEvent) => void): () => void;
}

export const createEventBus = (onListenerError: (error: unknown) => void = () => undefined): EventBus => {
  const listeners = new Set<(event: EngineEvent) => void>();
  return {
    publish(event) {
      for (const listener of listeners) {
        // A failing listener must not fail the write or state change that published.
        try {
          listener(event);
        } catch (error) {
          onListenerError(error);
        }
      }
    },
    subscribe(listener) {
      const own = (event: EngineEvent): void => listener(event);
      listeners.add(own);
      return () => listeners.delete(own);
    },
  };
};

/**
 * The same store, publishing a `message` event after each of its writes commits. (A write method
 * added to MessageStore belongs in this list, or the UI will not see its changes live.)
 */
export const publishingStore = (store: MessageStore, bus: EventBus): MessageStore => {
  const after =
    <A extends unknown[], R>(write: (...args: A) => Promise<R>, idOf: (...args: A) => string) =>
    async (...args: A): Promise<R> => {
      const result = await write(...args);
      bus.publish({ kind: 'message', id: idOf(...args) });
      return result;
    };
  return {
    ...store,
    receive: after(store.receive, (message) => message.id),
    reject: after(store.reject, (message) => message.id),
    recordTransform: after(store.recordTransform, (id) => id),
    recordDelivery: after(store.recordDelivery, (id) => id),
    recordError: after(store.recordError, (id) => id),
    recordDuplicate: after(store.recordDuplicate, (id) => id),
  };
};
