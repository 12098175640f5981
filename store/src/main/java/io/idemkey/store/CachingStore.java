package io.idemkey.store;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.github.benmanes.caffeine.cache.Expiry;
import com.github.benmanes.caffeine.cache.Ticker;
import java.sql.Connection;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.function.BooleanSupplier;

/**
 * A Caffeine cache of completed keys in front of another store: a duplicate of a completed key is
 * answered from memory, with no database call.
 *
 * <p>Only completed records are cached, never in-progress ones: another node may take over,
 * release or complete those at any moment, while a completed record does not change until it
 * expires. A record enters the cache when this store completes it (so the first duplicate on this
 * node is answered from memory) or when a claim finds it completed. Each entry expires when its
 * record does, and the cache is bounded by the heap its entries retain ({@link RetainedSize}):
 * keys, fingerprints, responses and the cache's own nodes.
 *
 * <p>To cache a completion it needs the fingerprint of the request that claimed the key, so it
 * remembers the fingerprint of each key it acquired until the key is completed or released, for at
 * most a few leases after the last claim or renewal (a request that never finishes leaves nothing
 * behind).
 *
 * <p>Thread-safe.
 */
final class CachingStore extends DelegatingStore {

  /** A completed record, and when it expires on the cache's ticker. */
  private record CachedResponse(
      Fingerprint fingerprint, StoredResponse response, long expiresAtNanos) {}

  /** A key as held by one token: the claim a completion settles. */
  private record HeldKey(IdempotencyKey key, long token) {}

  /** Keys held at once by requests on this node, past which completions go uncached. */
  private static final int MAX_HELD = 65_536;
  /** Leases after the last claim or renewal that a held key's fingerprint is remembered. */
  private static final int LEASES_REMEMBERED = 4;

  private final long ttlNanos;
  private final Ticker ticker;
  private final Cache<IdempotencyKey, CachedResponse> completed;
  private final Cache<HeldKey, Fingerprint> held;

  /**
   * @param maxBytes the bound on the heap that the cached entries retain
   * @param ttl how long the delegate keeps a completed key
   * @param lease the delegate's in-flight lease
   * @param clock null for the system's monotonic ticker; in tests, a clock that drives expiry
   */
  CachingStore(
      IdempotencyStore delegate, long maxBytes, Duration ttl, Duration lease, Clock clock) {
    super(delegate);
    this.ttlNanos = saturatedNanos(ttl);
    this.ticker = clock == null ? Ticker.systemTicker() : () -> toNanos(clock.instant());
    this.completed =
        Caffeine.newBuilder()
            .maximumWeight(maxBytes)
            .weigher(
                (IdempotencyKey key, CachedResponse cached) ->
                    (int) Math.min(Integer.MAX_VALUE,
                        RetainedSize.ofCompletedEntry(
                            key, cached.fingerprint(), cached.response())))
            .expireAfter(new UntilRecordExpires())
            .ticker(ticker)
            .build();
    this.held =
        Caffeine.newBuilder()
            .maximumSize(MAX_HELD)
            .expireAfterAccess(lease.multipliedBy(LEASES_REMEMBERED))
            .ticker(ticker)
            .build();
  }

  @Override
  public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
    CachedResponse cached = completed.getIfPresent(key);
    if (cached != null) {
      long remaining = cached.expiresAtNanos() - ticker.read();
      if (remaining > 0) {
        return cached.fingerprint().equals(fingerprint)
            ? new ClaimResult.Completed(cached.response(), Duration.ofNanos(remaining))
            : new ClaimResult.FingerprintMismatch();
      }
    }
    // Read before the claim is sent: the store's clock decided how long the record has left at
    // some instant after this one, so counted from here the entry expires no later than the
    // record, however long the claim's reply or this thread took.
    long sentNanos = ticker.read();
    ClaimResult result = delegate.claim(key, fingerprint);
    if (result instanceof ClaimResult.Completed done) {
      completed.put(
          key,
          new CachedResponse(
              fingerprint,
              done.response(),
              saturatedAdd(sentNanos, saturatedNanos(done.timeToLive()))));
    } else if (result instanceof ClaimResult.Held claimed) {
      held.put(new HeldKey(key, claimed.token()), fingerprint);
    }
    return result;
  }

  @Override
  public boolean complete(IdempotencyKey key, long token, StoredResponse response) {
    return settle(key, token, response, () -> delegate.complete(key, token, response));
  }

  /**
   * Runs a completion (a plain one or a transaction's commit) and, if it recorded the response for
   * a key this store claimed, caches the response.
   */
  private boolean settle(
      IdempotencyKey key, long token, StoredResponse response, BooleanSupplier completion) {
    HeldKey claim = new HeldKey(key, token);
    // Read before the completion is sent: the record's expiry is stamped with the database's time
    // of the completion statement, which is later, so the entry expires no later than the record.
    long startedNanos = ticker.read();
    boolean recorded;
    try {
      recorded = completion.getAsBoolean();
    } catch (RuntimeException e) {
      // The completion may have landed with its reply lost; a retry with the same token would
      // then answer true without storing its response, so nothing of this claim is cached.
      held.invalidate(claim);
      throw e;
    }
    // Removed by exactly one completion: a second one with the same token answers true but
    // changed nothing, and must not replace what the first one recorded.
    Fingerprint fingerprint = held.asMap().remove(claim);
    if (recorded && fingerprint != null) {
      completed.put(
          key, new CachedResponse(fingerprint, response, saturatedAdd(startedNanos, ttlNanos)));
    }
    return recorded;
  }

  @Override
  public boolean release(IdempotencyKey key, long token) {
    held.invalidate(new HeldKey(key, token));
    return delegate.release(key, token);
  }

  @Override
  public boolean renew(IdempotencyKey key, long token) {
    boolean renewed = delegate.renew(key, token);
    if (renewed) {
      held.getIfPresent(new HeldKey(key, token)); // keeps the fingerprint as long as the lease
    }
    return renewed;
  }

  @Override
  public StoreTransaction beginTransaction(IdempotencyKey key, long token) {
    return new CachingTransaction(delegate.beginTransaction(key, token), key, token);
  }

  @Override
  public int purgeExpired() {
    completed.cleanUp();
    held.cleanUp();
    return delegate.purgeExpired();
  }

  @Override
  public void close() {
    completed.invalidateAll();
    held.invalidateAll();
    delegate.close();
  }

  /** The weight of the cached entries, in estimated bytes of heap: for tests. */
  long cachedBytes() {
    completed.cleanUp();
    return completed.policy().eviction().orElseThrow().weightedSize().orElseThrow();
  }

  /** The number of cached entries: for tests. */
  long cachedEntries() {
    completed.cleanUp();
    return completed.estimatedSize();
  }

  /** The number of held keys whose fingerprint is remembered: for tests. */
  long heldKeys() {
    held.cleanUp();
    return held.estimatedSize();
  }

  private static long toNanos(Instant instant) {
    return instant.getEpochSecond() * 1_000_000_000L + instant.getNano();
  }

  private static long saturatedNanos(Duration duration) {
    return duration.compareTo(Duration.ofNanos(Long.MAX_VALUE)) >= 0
        ? Long.MAX_VALUE
        : duration.toNanos();
  }

  private static long saturatedAdd(long a, long b) {
    long sum = a + b;
    return ((a ^ sum) & (b ^ sum)) < 0 ? Long.MAX_VALUE : sum;
  }

  /** A transaction whose successful commit caches the response, as {@link #complete} does. */
  private final class CachingTransaction implements StoreTransaction {
    private final StoreTransaction transaction;
    private final IdempotencyKey key;
    private final long token;

    CachingTransaction(StoreTransaction transaction, IdempotencyKey key, long token) {
      this.transaction = transaction;
      this.key = key;
      this.token = token;
    }

    @Override
    public Connection connection() {
      return transaction.connection();
    }

    @Override
    public boolean commit(StoredResponse response) {
      return settle(key, token, response, () -> transaction.commit(response));
    }

    @Override
    public boolean release() {
      held.invalidate(new HeldKey(key, token));
      return transaction.release();
    }

    @Override
    public StepStore steps() {
      return transaction.steps();
    }

    @Override
    public void rollback() {
      transaction.rollback();
    }

    @Override
    public void close() {
      transaction.close();
    }
  }

  private static final class UntilRecordExpires implements Expiry<IdempotencyKey, CachedResponse> {
    @Override
    public long expireAfterCreate(IdempotencyKey key, CachedResponse value, long currentTime) {
      return Math.max(0, value.expiresAtNanos() - currentTime);
    }

    @Override
    public long expireAfterUpdate(
        IdempotencyKey key, CachedResponse value, long currentTime, long currentDuration) {
      return expireAfterCreate(key, value, currentTime);
    }

    @Override
    public long expireAfterRead(
        IdempotencyKey key, CachedResponse value, long currentTime, long currentDuration) {
      return currentDuration;
    }
  }
}
