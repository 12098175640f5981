package io.idemkey.store;

/**
 * The dedup store: records which request holds each key, and the response of each completed key.
 *
 * <p>A key is claimed by exactly one caller at a time, across threads and across every store
 * instance that shares the same database. The claim returns a fencing token; completing,
 * releasing or renewing the key succeeds only with the current token, so a caller whose lease ran
 * out and was taken over can never overwrite the new holder's record.
 *
 * <p>Only two states are stored: in progress and completed. A key whose time to live has passed,
 * or that was released, is free again; that is derived from timestamps.
 *
 * <p>Implementations are thread-safe. Every method may throw {@link StoreUnavailableException}
 * when the backing database cannot be reached.
 */
public interface IdempotencyStore extends AutoCloseable {

  /**
   * Claims {@code key} for a request with {@code fingerprint}.
   *
   * @return {@link ClaimResult.Acquired} or {@link ClaimResult.TakenOver} when the caller now
   *     holds the key; otherwise what holds it, or, with sequence keys ({@link
   *     StoreBuilder#sequenceKeys}), {@link ClaimResult.KeyExpired} for a key that is used up
   * @throws IllegalArgumentException with sequence keys, if the key is not a sequence number
   * @throws StoreUnavailableException if the store cannot be reached
   */
  ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint);

  /**
   * Completes a key held with {@code token}, recording {@code response} for the time to live.
   *
   * @return true if recorded; false if {@code token} is no longer current (the key was taken
   *     over, released or expired), in which case nothing changes
   * @throws StoreUnavailableException if the store cannot be reached
   */
  boolean complete(IdempotencyKey key, long token, StoredResponse response);

  /**
   * Releases a key held with {@code token}, so the next claim acquires it.
   *
   * @return true if released; false if {@code token} is no longer current
   * @throws StoreUnavailableException if the store cannot be reached
   */
  boolean release(IdempotencyKey key, long token);

  /**
   * Renews the lease of a key held with {@code token} for another full lease.
   *
   * @return true if renewed; false if {@code token} is no longer current
   * @throws StoreUnavailableException if the store cannot be reached
   */
  boolean renew(IdempotencyKey key, long token);

  /**
   * Opens a transaction in which the request holding {@code key} with {@code token} runs, and in
   * which its completion is written (transactional mode, SPEC §6).
   *
   * @throws UnsupportedOperationException if this store keeps its keys outside the application's
   *     database (the memory store)
   * @throws StoreUnavailableException if the store cannot be reached
   */
  StoreTransaction beginTransaction(IdempotencyKey key, long token);

  /**
   * The floor of {@code key}'s scope (SPEC §13): the highest sequence key of the scope that counts
   * as used without a record of its own, or -1 if the scope has none. It only rises.
   *
   * @throws IllegalArgumentException if {@code key} is not a sequence key
   * @throws UnsupportedOperationException if this store does not keep sequence keys
   * @throws StoreUnavailableException if the store cannot be reached
   */
  default long floor(IdempotencyKey key) {
    throw new UnsupportedOperationException(
        "this idempotency store keeps no floors; build it with StoreBuilder.sequenceKeys(true)");
  }

  /**
   * Opens a transaction for sequence keys that one caller at a time takes in rising order per
   * scope (a log's offsets), here the keys {@code first} to {@code last} of one scope, run one
   * after another in it: no row is kept per key; instead the commit raises the scope's floor to
   * {@code last}, in the same commit as the caller's writes, if the floor is below {@code first}.
   * A second caller running the same keys meanwhile (a consumer that lost its partition and still
   * runs) waits at the floor's row for the first to commit, finds the floor raised, and commits
   * nothing. The transaction begins when its connection is first asked for; its {@code commit}
   * stores no response, returns false (everything rolled back) if the floor had reached {@code
   * first}, and, when its outcome is unknown (the reply lost), throws {@link
   * StoreUnavailableException}: the floor then says whether it landed. Its {@code release} rolls
   * back; it has no step store.
   *
   * @throws IllegalArgumentException if the keys are not sequence keys of one scope, {@code
   *     first} at most {@code last}
   * @throws UnsupportedOperationException if this store does not keep sequence keys in the
   *     application's database
   */
  default StoreTransaction beginInOrder(IdempotencyKey first, IdempotencyKey last) {
    throw new UnsupportedOperationException(
        "this idempotency store keeps no floors; build it with StoreBuilder.sequenceKeys(true)");
  }

  /**
   * The results of the steps that requests holding keys of this store made (SPEC §12), kept
   * beside the keys. Stores built by {@link StoreBuilder} have one.
   *
   * @throws UnsupportedOperationException if this store keeps no step results
   */
  default StepStore steps() {
    throw new UnsupportedOperationException(
        "this idempotency store keeps no step results; build it with StoreBuilder");
  }

  /**
   * Calls {@code onSettled} when {@code key} may have been completed or released, on this node or
   * any other, until the registration is closed. Calls may be spurious (claim again to see what
   * happened) and run on a thread of the store's, so they must be quick. A store that cannot tell
   * never calls: the caller then looks again when the holder's lease would run out.
   */
  default Registration watch(IdempotencyKey key, Runnable onSettled) {
    return () -> {};
  }

  /**
   * Whether the store found its database unreachable and has not reached it since: calls then
   * fail at once, but for one probe at a time (SPEC §15). For health checks and metrics.
   */
  default boolean knownDown() {
    return false;
  }

  /**
   * Whether this node hears when a key settles on any node, so that a waiting request is woken
   * then: false behind a transaction pooler without a listening connection of its own ({@link
   * StoreBuilder#listenUrl}), when waiters look again only when the holder's lease would end.
   * For health checks.
   */
  default boolean wakesWaiters() {
    return true;
  }

  /**
   * How many connections the pool that requests take theirs from holds, or 0 if the store
   * cannot tell (a data source other than HikariCP's, the memory store). In transactional mode
   * the filter lets that many requests run at once (SPEC §15).
   */
  default int requestConnections() {
    return 0;
  }

  /** A subscription, ended by {@link #close()}. */
  interface Registration extends AutoCloseable {
    @Override
    void close();
  }

  /**
   * Deletes expired keys in bounded batches. Across every instance sharing a database, only one
   * purges at a time: each batch is one instance's, and a call that finds another purging
   * returns 0 at once.
   *
   * @return the number of keys deleted by this call
   * @throws StoreUnavailableException if the store cannot be reached
   */
  int purgeExpired();

  /** Stops background work and releases connections that this store opened itself. */
  @Override
  void close();
}
