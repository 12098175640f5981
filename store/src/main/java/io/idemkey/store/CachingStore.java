package io.idemkey.store;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.github.benmanes.caffeine.cache.Expiry;
import com.github.benmanes.caffeine.cache.Ticker;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;

/**
 * A Caffeine cache of completed keys in front of another store: a duplicate of a completed key is
 * answered from memory, with no database call.
 *
 * <p>Only completed records are cached, never in-progress ones: another node may take over,
 * release or complete those at any moment, while a completed record does not change until it
 * expires. Each entry expires when its record does (the store's clock decides how long the
 * record has left), and the cache is bounded by the heap its entries retain
 * ({@link RetainedSize}): keys, fingerprints, responses and the cache's own nodes.
 *
 * <p>Thread-safe.
 */
final class CachingStore implements IdempotencyStore {

  /** A completed record, and when it expires on the cache's ticker. */
  private record CachedResponse(
      Fingerprint fingerprint, StoredResponse response, long expiresAtNanos) {}

  private final IdempotencyStore delegate;
  private final Ticker ticker;
  private final Cache<IdempotencyKey, CachedResponse> completed;

  /**
   * @param clock null for the system's monotonic ticker; in tests, a clock that drives expiry
   */
  CachingStore(IdempotencyStore delegate, long maxBytes, Clock clock) {
    this.delegate = delegate;
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
    ClaimResult result = delegate.claim(key, fingerprint);
    if (result instanceof ClaimResult.Completed done) {
      // The store's clock decided how long the record has left; counted from now on this node's
      // ticker, the entry expires no later than the record does (less the claim's round trip).
      completed.put(
          key,
          new CachedResponse(
              fingerprint, done.response(), ticker.read() + done.timeToLive().toNanos()));
    }
    return result;
  }

  @Override
  public boolean complete(IdempotencyKey key, long token, StoredResponse response) {
    // Not cached here: the first duplicate's claim reads the record once and caches it with its
    // fingerprint and expiry as stored.
    return delegate.complete(key, token, response);
  }

  @Override
  public boolean release(IdempotencyKey key, long token) {
    return delegate.release(key, token);
  }

  @Override
  public boolean renew(IdempotencyKey key, long token) {
    return delegate.renew(key, token);
  }

  @Override
  public StoreTransaction beginTransaction(IdempotencyKey key, long token) {
    return delegate.beginTransaction(key, token);
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

  @Override
  public int purgeExpired() {
    completed.cleanUp();
    return delegate.purgeExpired();
  }

  @Override
  public void close() {
    completed.invalidateAll();
    delegate.close();
  }

  private static long toNanos(Instant instant) {
    return instant.getEpochSecond() * 1_000_000_000L + instant.getNano();
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
