/**
 * Runs `task(0) … task(count - 1)` with at most `concurrency` in flight; the first failure stops
 * new tasks from starting and is rethrown once the running ones settle.
 */
export async function runPool(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < count) {
      if (signal?.aborted === true) {
        failure ??= signal.reason ?? new Error('aborted');
        return;
      }
      const i = next++;
      try {
        await task(i);
      } catch (e) {
        failure ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  if (failure !== undefined) throw failure;
}
