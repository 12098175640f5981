package io.idemkey.execution;

import io.idemkey.store.Fingerprint;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.StepStore;
import io.idemkey.store.StoreTransaction;
import java.sql.Connection;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A key held by one run: its lease renewed from construction until {@link #stopLease()}, its
 * transaction (transactional mode) and its steps.
 *
 * <p>Connections: none of its own. The transaction takes one of the requests' pool when its
 * connection is first asked for, and gives it back on {@link #close()}; renewals run on the
 * store's upkeep connections.
 *
 * <p>Thread-safety: the lease, release and close may be called from any thread, each acting
 * once; the transaction is confined to the thread that runs the work.
 */
final class KeyHold implements HeldKey {

  private static final System.Logger LOG = System.getLogger(KeyHold.class.getName());

  private final IdempotencyStore store;
  private final IdempotencyKey key;
  private final long token;
  private final StoreTransaction transaction;
  private final Steps steps;
  private final LeaseRenewals.Lease lease;
  private final AtomicBoolean released = new AtomicBoolean();
  private final AtomicBoolean closed = new AtomicBoolean();
  private volatile boolean leaseLost;

  /**
   * Starts the lease's renewal, then opens the transaction (no connection yet) when asked: if
   * that fails, the renewal is stopped again, and the key is left for the caller to release.
   */
  KeyHold(
      IdempotencyStore store,
      LeaseRenewals renewals,
      boolean transactional,
      IdempotencyKey key,
      Fingerprint fingerprint,
      long token,
      Runnable onLeaseLost,
      StepListener stepListener) {
    this.store = store;
    this.key = key;
    this.token = token;
    this.lease = renewals.start(key, token, () -> {
      leaseLost = true;
      if (onLeaseLost != null) {
        onLeaseLost.run();
      }
    });
    try {
      this.transaction = transactional ? store.beginTransaction(key, token) : null;
    } catch (RuntimeException | Error e) {
      lease.stop();
      throw e;
    }
    this.steps = KeySteps.holding(stepStore(), key, fingerprint, token, stepListener);
  }

  /** The step store of this run: its transaction's view in transactional mode. */
  private StepStore stepStore() {
    if (transaction != null) {
      return transaction.steps();
    }
    try {
      return store.steps();
    } catch (UnsupportedOperationException e) {
      return null; // a store that keeps no step results: steps call every time
    }
  }

  @Override
  public IdempotencyKey key() {
    return key;
  }

  @Override
  public long token() {
    return token;
  }

  @Override
  public Steps steps() {
    return steps;
  }

  @Override
  public Optional<Connection> connection() {
    return transaction == null ? Optional.empty() : Optional.of(transaction.connection());
  }

  @Override
  public boolean leaseLost() {
    return leaseLost;
  }

  @Override
  public Optional<StoreTransaction> transaction() {
    return Optional.ofNullable(transaction);
  }

  @Override
  public void stopLease() {
    lease.stop();
  }

  @Override
  public boolean release() {
    lease.stop();
    if (!released.compareAndSet(false, true)) {
      return false;
    }
    try {
      return transaction != null ? transaction.release() : store.release(key, token);
    } catch (RuntimeException e) {
      LOG.log(System.Logger.Level.WARNING, "releasing a key failed; its lease will run out", e);
      return false;
    }
  }

  @Override
  public void close() {
    lease.stop();
    if (closed.compareAndSet(false, true) && transaction != null) {
      transaction.close();
    }
  }
}
