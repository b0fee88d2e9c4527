// A bounded parallel loop: at most `limit` calls of `fn` in flight, items taken in order.
//
// After a call fails no further item is started, and the loop rejects (with the first error) only
// once the calls still in flight have settled: a caller that sees the failure knows nothing of the
// loop is still running (an upload that failed on ENOSPC must not leave others writing objects
// after its file was deleted and purged).
export async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const workers = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (!failed && next < items.length) {
      try {
        await fn(items[next++]);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  }));
  const bad = workers.find((w): w is PromiseRejectedResult => w.status === 'rejected');
  if (bad) throw bad.reason;
}
