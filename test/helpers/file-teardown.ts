import test, { type ExecutionContext } from 'ava';

// Some test files share one costly thing among all their tests (an engine process, a browser, a pair
// of engines with their certificates): it is made in the first test (or test.before) and must live
// until the file's last test is done, so a test's own t.teardown is too early for it.

/**
 * A teardown owner for what a whole test file shares: pass it where a test's `t` would go (tempDir,
 * startEngineProcess, openMllpClient…). Its teardowns run after the file's last test, the last
 * registered first, as t.teardown's do. Call it once, at the top of a test file.
 */
export const fileTeardown = (): Pick<ExecutionContext, 'teardown'> => {
  const teardowns: Array<() => unknown> = [];
  test.after.always(async () => {
    // Every teardown runs, as t.teardown's do, even when an earlier one throws (a browser that will
    // not close must not leave an engine and its redis-server behind); the first error is reported.
    let failure: unknown;
    for (const teardown of teardowns.reverse()) {
      try {
        await teardown();
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
  });
  return { teardown: (fn) => void teardowns.push(fn) };
};
