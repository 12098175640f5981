package io.idemkey.execution;

import io.idemkey.store.StoreTransaction;
import java.util.Optional;

/**
 * A key held by a claim, as an adapter (the servlet filter, a message consumer) keeps it while its
 * work runs: the lease renewed, in transactional mode a transaction open (its connection taken
 * on first use), and the run's steps. The adapter settles the key itself: through {@link
 * #transaction()}'s commit, or the store's {@code complete}; or gives it up with {@link
 * #release()}. {@link IdempotentExecutor#execute} is built on it.
 *
 * <p>Thread-safe in its lease and release; the transaction belongs to the thread that runs the
 * work, until {@link #close()}.
 */
public interface HeldKey extends Attempt, AutoCloseable {

  /** The run's transaction in transactional mode, not begun until its connection is asked for. */
  Optional<StoreTransaction> transaction();

  /** Stops renewing the lease; a renewal already running finishes without reporting. */
  void stopLease();

  /**
   * Stops the lease and releases the key (rolling back the transaction first, and releasing on
   * its connection, when there is one), so that the next claim runs the work again. A store that
   * fails leaves the key to its lease, which runs out by itself.
   *
   * @return true if released; false if the token was no longer current or the store failed
   */
  boolean release();

  /** Stops the lease and closes the transaction, rolling back what was not committed. */
  @Override
  void close();
}
