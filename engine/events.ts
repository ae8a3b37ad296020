import type { MessageStore } from './store/contract.ts';

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
 * The same store, publishing a `message` event after each of its writes commits: the store itself
 * reports every write it commits (MessageStore.onCommit), so a new write cannot be left out.
 */
export const publishingStore = (store: MessageStore, bus: EventBus): MessageStore => {
  store.onCommit((id) => bus.publish({ kind: 'message', id }));
  return store;
};
