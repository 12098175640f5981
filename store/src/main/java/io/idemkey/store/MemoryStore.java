package io.idemkey.store;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BiPredicate;

/**
 * An in-process store for tests and single-node use ({@code idempotency.store=memory}). Keys do
 * not survive a restart and are not shared between processes.
 *
 * <p>Completed keys are bounded by a byte budget ({@code cache.max-bytes}) on the heap their
 * entries retain ({@link RetainedSize}): past it, Caffeine evicts the completed keys least likely
 * to be used again, and a retry of an evicted key runs the request again. In-progress keys weigh
 * nothing, so they are never evicted for size; each lives until its lease ends and the next claim
 * takes it over, or a purge removes it.
 *
 * <p>With sequence keys (SPEC §13) it keeps, per scope, the floor: the highest key whose
 * completed entry the purge removed. A key at or below it without an entry, or whose completed
 * entry has expired, is {@link ClaimResult.KeyExpired}, unless its request has a step result
 * kept. A lapsed lease is kept a ttl after it ran out, so that its retry takes it over however
 * high the floor has risen. A key evicted for size
 * is not purged: it leaves the floor where it was, and runs again like any evicted key.
 *
 * <p>Thread-safe: every operation is one atomic {@link ConcurrentMap#compute} on the key. The purge
 * raises a floor inside the compute that removes the entry, so a claim of that key sees either
 * the entry or the raised floor, never neither.
 */
final class MemoryStore implements IdempotencyStore {

  /** In progress (no response) until {@code expiresAt}, the end of its lease; or completed. */
  private record Entry(
      Fingerprint fingerprint, long token, StoredResponse response, Instant expiresAt) {

    boolean completed() {
      return response != null;
    }
  }

  private final Cache<IdempotencyKey, Entry> cache;
  private final ConcurrentMap<IdempotencyKey, Entry> entries;
  private final ConcurrentHashMap<IdempotencyKey, List<Runnable>> watchers =
      new ConcurrentHashMap<>();
  private final AtomicLong tokens = new AtomicLong();
  private final Clock clock;
  private final Duration ttl;
  private final Duration lease;
  private final boolean sequenceKeys;
  /** Sequence keys: each scope's floor. */
  private final ConcurrentMap<String, Long> floors = new ConcurrentHashMap<>();
  /** Whether a request has a step result kept (set by its step store): not used up then. */
  private volatile BiPredicate<IdempotencyKey, Fingerprint> resumable = (key, request) -> false;

  MemoryStore(Clock clock, Duration ttl, Duration lease, long maxBytes) {
    this(clock, ttl, lease, maxBytes, false);
  }

  /**
   * @param maxBytes the bound on the heap that completed entries retain; 0 for no bound
   * @param sequenceKeys whether keys are sequence numbers with a floor per scope (SPEC §13)
   * @throws IllegalArgumentException if {@code maxBytes} is negative
   */
  MemoryStore(Clock clock, Duration ttl, Duration lease, long maxBytes, boolean sequenceKeys) {
    if (maxBytes < 0) {
      throw new IllegalArgumentException("max bytes must be >= 0, was " + maxBytes);
    }
    this.clock = clock;
    this.ttl = ttl;
    this.lease = lease;
    this.sequenceKeys = sequenceKeys;
    // No expiry in Caffeine: an entry past its time stays visible to compute, so a lapsed lease is
    // taken over (not acquired afresh) and purgeExpired counts what it removes.
    this.cache =
        maxBytes == 0
            ? Caffeine.newBuilder().<IdempotencyKey, Entry>build()
            : Caffeine.newBuilder()
                .maximumWeight(maxBytes)
                .weigher(
                    (IdempotencyKey key, Entry entry) ->
                        entry.completed()
                            ? (int) Math.min(Integer.MAX_VALUE,
                                RetainedSize.ofCompletedEntry(
                                    key, entry.fingerprint(), entry.response()))
                            : 0)
                .<IdempotencyKey, Entry>build();
    this.entries = cache.asMap();
  }

  /**
   * @throws IllegalArgumentException with sequence keys, if the key is not a sequence number
   */
  @Override
  public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
    long number = sequenceKeys ? key.requireSequenceNumber() : -1;
    Instant now = clock.instant();
    Entry live = cache.getIfPresent(key);
    if (live != null && live.completed() && live.expiresAt().isAfter(now)
        && live.fingerprint().equals(fingerprint)) {
      // A replay changes nothing: answered without taking the key's lock.
      return new ClaimResult.Completed(live.response(), Duration.between(now, live.expiresAt()));
    }
    ClaimResult[] result = new ClaimResult[1];
    entries.compute(
        key,
        (k, existing) -> {
          if (sequenceKeys && usedUp(key, number, fingerprint, existing, now)) {
            result[0] = new ClaimResult.KeyExpired();
            return existing;
          }
          if (existing == null || !existing.expiresAt().isAfter(now)) {
            long token = tokens.incrementAndGet();
            // An expired in-progress entry is a lease that ran out: taken over.
            result[0] =
                existing == null || existing.completed()
                    ? new ClaimResult.Acquired(token)
                    : new ClaimResult.TakenOver(token, existing.token());
            return inProgress(fingerprint, token, now);
          }
          if (!existing.fingerprint().equals(fingerprint)) {
            result[0] = new ClaimResult.FingerprintMismatch();
          } else if (existing.completed()) {
            result[0] =
                new ClaimResult.Completed(
                    existing.response(), Duration.between(now, existing.expiresAt()));
          } else {
            result[0] = new ClaimResult.InProgress(Duration.between(now, existing.expiresAt()));
          }
          return existing;
        });
    return result[0];
  }

  /**
   * Whether a sequence key is used up: no entry, no step result of this request and at or below
   * its scope's floor, or completed and expired (its purge will raise the floor to it). A lapsed
   * lease is taken over as usual; a key released after a step runs again (SPEC §13).
   */
  private boolean usedUp(
      IdempotencyKey key, long number, Fingerprint fingerprint, Entry existing, Instant now) {
    if (existing == null) {
      Long floor = floors.get(key.scope());
      return floor != null && number <= floor && !resumable.test(key, fingerprint);
    }
    return existing.completed() && !existing.expiresAt().isAfter(now);
  }

  /** Tells the store which requests have step results kept ({@link MemoryStepStore}). */
  void resumableBy(BiPredicate<IdempotencyKey, Fingerprint> resumable) {
    this.resumable = resumable;
  }

  /** An in-progress entry lives as long as its lease: nothing else keeps it (SPEC §5). */
  private Entry inProgress(Fingerprint fingerprint, long token, Instant now) {
    return new Entry(fingerprint, token, null, now.plus(lease));
  }

  @Override
  public boolean complete(IdempotencyKey key, long token, StoredResponse response) {
    Instant now = clock.instant();
    boolean[] updated = new boolean[1];
    entries.computeIfPresent(
        key,
        (k, existing) -> {
          if (existing.token() != token) {
            return existing;
          }
          // Completing again with the same token (a retry) answers true and changes nothing.
          updated[0] = true;
          if (existing.completed()) {
            return existing;
          }
          return new Entry(existing.fingerprint(), token, response, now.plus(ttl));
        });
    if (updated[0]) {
      settled(key);
    }
    return updated[0];
  }

  @Override
  public Registration watch(IdempotencyKey key, Runnable onSettled) {
    watchers.computeIfAbsent(key, k -> new CopyOnWriteArrayList<>()).add(onSettled);
    return () ->
        watchers.computeIfPresent(
            key, (k, list) -> list.remove(onSettled) && list.isEmpty() ? null : list);
  }

  private void settled(IdempotencyKey key) {
    List<Runnable> list = watchers.get(key);
    if (list != null) {
      list.forEach(SettledKeys::runQuietly); // one failing watcher neither fails nor skips others
    }
  }

  /** Releasing removes the key, as the PostgreSQL store does. */
  @Override
  public boolean release(IdempotencyKey key, long token) {
    boolean[] released = new boolean[1];
    entries.computeIfPresent(
        key,
        (k, existing) -> {
          if (existing.completed() || existing.token() != token) {
            return existing;
          }
          released[0] = true;
          // With sequence keys the released key is kept as a lapsed lease, as PostgresStore
          // keeps it: its retry runs, however late within a ttl (SPEC §13).
          return sequenceKeys
              ? new Entry(existing.fingerprint(), existing.token(), null, clock.instant())
              : null;
        });
    if (released[0]) {
      settled(key);
    }
    return released[0];
  }

  @Override
  public boolean renew(IdempotencyKey key, long token) {
    Instant now = clock.instant();
    boolean[] renewed = new boolean[1];
    entries.computeIfPresent(
        key,
        (k, existing) -> {
          if (existing.completed() || existing.token() != token) {
            return existing;
          }
          renewed[0] = true;
          return inProgress(existing.fingerprint(), token, now);
        });
    return renewed[0];
  }

  /**
   * Runs {@code action} while holding the key's lock, if {@code token} holds the key in progress
   * for {@code fingerprint} (a step result is stored so: SPEC §12).
   *
   * @return whether it ran
   */
  boolean whileHeld(IdempotencyKey key, long token, Fingerprint fingerprint, Runnable action) {
    boolean[] held = new boolean[1];
    entries.computeIfPresent(
        key,
        (k, existing) -> {
          if (!existing.completed() && existing.token() == token
              && existing.fingerprint().equals(fingerprint)) {
            action.run();
            held[0] = true;
          }
          return existing;
        });
    return held[0];
  }

  @Override
  public StoreTransaction beginTransaction(IdempotencyKey key, long token) {
    throw new UnsupportedOperationException(
        "the memory store cannot share a transaction with the application; use PostgreSQL");
  }

  /**
   * Removes expired keys, and finishes the evictions that the byte budget calls for. With
   * sequence keys, raises each scope's floor to the highest completed key removed.
   *
   * @return the number of expired keys removed (evictions for size are not counted)
   */
  @Override
  public int purgeExpired() {
    cache.cleanUp();
    Instant now = clock.instant();
    int[] deleted = new int[1];
    entries.forEach(
        (key, seen) -> {
          if (seen.expiresAt().isAfter(now)) {
            return;
          }
          entries.computeIfPresent(key, (k, entry) -> {
            if (entry.expiresAt().isAfter(now)) {
              return entry;
            }
            if (sequenceKeys && !entry.completed() && entry.expiresAt().plus(ttl).isAfter(now)) {
              return entry; // a lapsed lease: kept a ttl, as PostgresStore keeps it (SPEC §13)
            }
            if (sequenceKeys && entry.completed()) {
              long number = IdempotencyKey.sequenceNumber(key.key());
              if (number >= 0) {
                floors.merge(key.scope(), number, Math::max);
              }
            }
            deleted[0]++;
            return null;
          });
        });
    return deleted[0];
  }

  /** The weight of the completed entries, in estimated bytes of heap: for tests. */
  long completedBytes() {
    cache.cleanUp();
    return cache.policy().eviction().map(eviction -> eviction.weightedSize().orElse(0)).orElse(0L);
  }

  /** The number of entries, completed or in progress: for tests. */
  long size() {
    cache.cleanUp();
    return cache.estimatedSize();
  }

  @Override
  public void close() {}
}
