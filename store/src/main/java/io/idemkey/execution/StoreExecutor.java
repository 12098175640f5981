package io.idemkey.execution;

import io.idemkey.store.ClaimResult;
import io.idemkey.store.Fingerprint;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.RequestTransactions;
import io.idemkey.store.StoreTransaction;
import io.idemkey.store.StoreUnavailableException;
import io.idemkey.store.StoredResponse;
import io.idemkey.store.TransactionAbortedException;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * The {@link IdempotentExecutor} over a store. A call's life: claim; then run (holding the key:
 * lease renewed, transaction open in transactional mode), replay, or wait and claim again.
 *
 * <p>Connections, per stage (of the store's requests' pool unless said; lease renewals run on the
 * store's upkeep connections throughout): claiming and waiting, none between statements (a wait
 * holds none); running, none until the work first asks for {@link Attempt#connection()}, then that
 * one until the commit; without a transaction, none (each step and the completion take one for
 * their statement).
 *
 * <p>Thread-safe: it keeps no state per call; each call runs on its caller's thread.
 */
final class StoreExecutor implements IdempotentExecutor {

  /** The status a stored work result is recorded with: the store keeps responses. */
  static final int RESULT_STATUS = 200;

  private final IdempotencyStore store;
  private final LeaseRenewals renewals;
  private final boolean transactional;
  private final OnInFlight onInFlight;
  private final Duration waitTimeout;
  private final StepListener stepListener;

  StoreExecutor(
      IdempotencyStore store, Duration lease, boolean transactional, OnInFlight onInFlight,
      Duration waitTimeout, StepListener stepListener) {
    this.store = store;
    this.renewals = new LeaseRenewals(store, lease);
    this.transactional = transactional;
    this.onInFlight = onInFlight;
    this.waitTimeout = waitTimeout;
    this.stepListener = stepListener;
  }

  @Override
  public <T, E extends Exception> Outcome<T> execute(
      IdempotencyKey key, Fingerprint fingerprint, Codec<T> codec, Work<T, E> work) throws E {
    Objects.requireNonNull(key, "key");
    Objects.requireNonNull(fingerprint, "fingerprint");
    Objects.requireNonNull(codec, "codec");
    Objects.requireNonNull(work, "work");
    long deadline = System.nanoTime() + waitTimeout.toNanos();
    ClaimResult claim = store.claim(key, fingerprint);
    while (true) {
      if (claim instanceof ClaimResult.Held held) {
        return run(key, fingerprint, held.token(), codec, work);
      }
      if (claim instanceof ClaimResult.Completed completed) {
        StoredResponse stored = completed.response();
        if (!stored.bodyStored()) {
          throw new IllegalStateException("the key is completed but its result was not stored");
        }
        return new Outcome<>(Outcome.Kind.REPLAYED, codec.decode(stored.body()));
      }
      if (claim instanceof ClaimResult.KeyExpired) {
        return new Outcome<>(Outcome.Kind.USED_UP, null);
      }
      if (claim instanceof ClaimResult.FingerprintMismatch) {
        throw new KeyReusedException(
            "the key is held or completed for other work (another fingerprint); nothing ran");
      }
      claim = awaitSettled(key, fingerprint, (ClaimResult.InProgress) claim, deadline);
    }
  }

  /**
   * Waits until the key's holder settles it (the store's watch) or its lease would run out, then
   * claims again; the watch is registered before the claim that finds the key held, so no
   * settlement between the two is missed.
   */
  private ClaimResult awaitSettled(
      IdempotencyKey key, Fingerprint fingerprint, ClaimResult.InProgress held, long deadline) {
    long left = deadline - System.nanoTime();
    if (onInFlight == OnInFlight.REJECT || left <= 0) {
      throw new InProgressException(
          onInFlight == OnInFlight.REJECT
              ? "another run holds the key; its lease runs for " + held.leaseRemaining().toMillis()
                  + " ms more"
              : "another run still held the key after a wait of " + waitTimeout.toMillis()
                  + " ms; its lease runs for " + held.leaseRemaining().toMillis() + " ms more",
          held.leaseRemaining());
    }
    CountDownLatch settled = new CountDownLatch(1);
    try (IdempotencyStore.Registration watching = store.watch(key, settled::countDown)) {
      ClaimResult again = store.claim(key, fingerprint);
      if (!(again instanceof ClaimResult.InProgress inProgress)) {
        return again;
      }
      long wait = Math.min(left, inProgress.leaseRemaining().toNanos() + 1_000_000);
      if (!settled.await(wait, TimeUnit.NANOSECONDS) && wait == left) {
        return store.claim(key, fingerprint); // the last look before the wait runs out
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InProgressException(
          "interrupted while another run held the key", held.leaseRemaining());
    }
    return store.claim(key, fingerprint);
  }

  private <T, E extends Exception> Outcome<T> run(
      IdempotencyKey key, Fingerprint fingerprint, long token, Codec<T> codec, Work<T, E> work)
      throws E {
    HeldKey held;
    try {
      held = hold(key, fingerprint, token, null, stepListener);
    } catch (RuntimeException | Error e) {
      releaseQuietly(key, token);
      throw e;
    }
    StoreTransaction transaction = held.transaction().orElse(null);
    StoredResponse stored;
    boolean completed;
    try {
      T value;
      try {
        if (transaction != null) {
          try (RequestTransactions.Binding bound = RequestTransactions.bind(transaction)) {
            value = work.run(held);
          }
        } else {
          value = work.run(held);
        }
        Objects.requireNonNull(value, "the work's result");
        stored = new StoredResponse(RESULT_STATUS, List.of(), codec.encode(value), true);
      } catch (Exception | Error e) {
        held.release(); // the work failed: nothing stored, and the next call runs it again
        throw e;
      }
      try {
        completed = transaction != null
            ? transaction.commit(stored)
            : store.complete(key, token, stored);
      } catch (TransactionAbortedException | StoreUnavailableException e) {
        if (transaction != null) {
          // Nothing committed (unless a commit landed and only its reply was lost: then the
          // release finds the key completed and leaves it, and the next call replays).
          held.release();
        }
        // Without a transaction the work's effects are done: the key is left to its lease, so
        // that no call runs the work again before it runs out.
        throw e;
      }
      if (!completed) {
        throw new LeaseLostException(
            "the work for a key finished after its lease was taken over (token " + token + "): "
                + (transaction != null ? "its writes were rolled back" : "its result was not stored")
                + "; the new holder's result counts");
      }
      return new Outcome<>(Outcome.Kind.EXECUTED, value);
    } finally {
      held.close();
    }
  }

  private void releaseQuietly(IdempotencyKey key, long token) {
    try {
      store.release(key, token);
    } catch (RuntimeException e) {
      // The key's lease runs out by itself.
    }
  }

  @Override
  public HeldKey hold(
      IdempotencyKey key, Fingerprint fingerprint, long token, Runnable onLeaseLost,
      StepListener steps) {
    return new KeyHold(store, renewals, transactional, key, fingerprint, token, onLeaseLost,
        Objects.requireNonNull(steps, "steps"));
  }

  @Override
  public IdempotencyStore store() {
    return store;
  }

  @Override
  public boolean transactional() {
    return transactional;
  }

  @Override
  public void close() {
    renewals.close();
  }
}
