package io.idemkey.execution;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
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
import java.util.ArrayList;
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

  /** How often keys taken in order are run again when other runs raised their floor. */
  private static final int MAX_IN_ORDER_ATTEMPTS = 3;
  /** The status a stored work result is recorded with: the store keeps responses. */
  static final int RESULT_STATUS = 200;
  /** What a transaction of a key taken in order commits with: it stores no response. */
  private static final StoredResponse IN_ORDER_SETTLED =
      new StoredResponse(RESULT_STATUS, List.of(), new byte[0], false);

  private final IdempotencyStore store;
  private final LeaseRenewals renewals;
  private final boolean transactional;
  private final OnInFlight onInFlight;
  private final Duration waitTimeout;
  private final StepListener stepListener;
  /**
   * The floors of the scopes whose keys were taken in order, as last seen or raised here: lower
   * bounds of the stored floors, which only rise.
   */
  private final Cache<String, Long> floors = Caffeine.newBuilder().maximumSize(10_000).build();

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

  @Override
  public <T, E extends Exception> Outcome<T> executeInOrder(
      IdempotencyKey key, Codec<T> codec, Work<T, E> work) throws E {
    Objects.requireNonNull(key, "key");
    Objects.requireNonNull(codec, "codec");
    Objects.requireNonNull(work, "work");
    if (!transactional) {
      return execute(key, Fingerprint.ofKey(key), codec, work);
    }
    List<T> result = new ArrayList<>(1);
    List<IdempotencyKey> keys = List.of(key);
    int ran = runInOrder(keys, risingNumbers(keys), (index, attempt) ->
        result.add(Objects.requireNonNull(work.run(attempt), "the work's result")));
    return ran == 1
        ? new Outcome<>(Outcome.Kind.EXECUTED, result.get(0))
        : new Outcome<>(Outcome.Kind.USED_UP, null);
  }

  @Override
  public <E extends Exception> int executeInOrder(List<IdempotencyKey> keys, InOrderWork<E> work)
      throws E {
    Objects.requireNonNull(work, "work");
    long[] numbers = risingNumbers(keys);
    if (transactional) {
      return runInOrder(keys, numbers, work);
    }
    int ran = 0;
    for (int i = 0; i < numbers.length; i++) {
      int index = i;
      Outcome<Boolean> outcome = execute(keys.get(i), Fingerprint.ofKey(keys.get(i)),
          Codec.none(), attempt -> {
            work.run(index, attempt);
            return Boolean.TRUE;
          });
      if (outcome.kind() == Outcome.Kind.EXECUTED) {
        ran++;
      }
    }
    return ran;
  }

  /**
   * Runs the keys above the scope's floor in one transaction that raises it to the last; when
   * another run raised it meanwhile, reads it and runs what is left again.
   */
  private <E extends Exception> int runInOrder(
      List<IdempotencyKey> keys, long[] numbers, InOrderWork<E> work) throws E {
    IdempotencyKey first = keys.get(0);
    IdempotencyKey last = keys.get(keys.size() - 1);
    Long known = floors.getIfPresent(first.scope());
    for (int attempt = 1; ; attempt++) {
      if (known == null) {
        known = store.floor(first);
        raiseKnownFloor(first, known);
      }
      int from = 0;
      while (from < numbers.length && numbers[from] <= known) {
        from++;
      }
      if (from == numbers.length) {
        return 0;
      }
      if (attempt > MAX_IN_ORDER_ATTEMPTS) {
        throw new InProgressException("other runs kept raising the floor of the keys' scope while"
            + " these ran (" + MAX_IN_ORDER_ATTEMPTS + " times): is its log read by two consumers?",
            Duration.ofSeconds(1));
      }
      boolean advanced;
      try (StoreTransaction transaction = store.beginInOrder(keys.get(from), last)) {
        try (RequestTransactions.Binding bound = RequestTransactions.bind(transaction)) {
          for (int i = from; i < numbers.length; i++) {
            IdempotencyKey key = keys.get(i);
            work.run(i, new InOrderAttempt(key, transaction,
                KeySteps.holding(null, key, Fingerprint.ofKey(key), 0, stepListener)));
          }
        }
        advanced = transaction.commit(IN_ORDER_SETTLED);
      } catch (StoreUnavailableException e) {
        floors.invalidate(first.scope()); // the commit may have landed: the next call reads it
        throw e;
      } catch (Exception e) {
        // The work or the commit failed: if another run committed these keys meanwhile (its
        // rows made ours fail), that is a lost race, not a failure.
        floors.invalidate(first.scope());
        long now;
        try {
          now = store.floor(first);
        } catch (RuntimeException unread) {
          e.addSuppressed(unread);
          throw e;
        }
        raiseKnownFloor(first, now);
        if (now < numbers[from]) {
          throw e;
        }
        known = now;
        continue;
      }
      if (advanced) {
        raiseKnownFloor(first, numbers[numbers.length - 1]);
        return numbers.length - from;
      }
      known = null; // another run raised it: what it ran is done, the rest runs again
    }
  }

  /** The keys' numbers, checked: sequence keys of one scope, rising. */
  private static long[] risingNumbers(List<IdempotencyKey> keys) {
    if (keys.isEmpty()) {
      throw new IllegalArgumentException("no keys to run in order");
    }
    String scope = keys.get(0).scope();
    long[] numbers = new long[keys.size()];
    for (int i = 0; i < numbers.length; i++) {
      IdempotencyKey key = keys.get(i);
      numbers[i] = key.requireSequenceNumber();
      if (!key.scope().equals(scope) || (i > 0 && numbers[i] <= numbers[i - 1])) {
        throw new IllegalArgumentException("keys run in order are of one scope and rising; key "
            + i + " is " + (key.scope().equals(scope) ? "not above the one before it" : "of another"
            + " scope"));
      }
    }
    return numbers;
  }

  /** Notes that the floor of the key's scope has reached {@code floor}; it only rises. */
  private void raiseKnownFloor(IdempotencyKey key, long floor) {
    floors.asMap().merge(key.scope(), floor, Math::max);
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
