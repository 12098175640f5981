package io.idemkey.store;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.UnaryOperator;

/**
 * An in-process store for tests and single-node use ({@code idempotency.store=memory}). Keys do
 * not survive a restart and are not shared between processes.
 *
 * <p>Thread-safe: every operation is one atomic {@link ConcurrentHashMap#compute} on the key.
 */
final class MemoryStore implements IdempotencyStore {

  private record Entry(
      Fingerprint fingerprint,
      long token,
      Instant leaseExpiresAt,
      StoredResponse response,
      Instant expiresAt) {

    boolean completed() {
      return response != null;
    }
  }

  private final ConcurrentHashMap<IdempotencyKey, Entry> entries = new ConcurrentHashMap<>();
  private final AtomicLong tokens = new AtomicLong();
  private final Clock clock;
  private final Duration ttl;
  private final Duration lease;

  MemoryStore(Clock clock, Duration ttl, Duration lease) {
    this.clock = clock;
    this.ttl = ttl;
    this.lease = lease;
  }

  @Override
  public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
    Instant now = clock.instant();
    ClaimResult[] result = new ClaimResult[1];
    entries.compute(
        key,
        (k, existing) -> {
          if (existing == null || !existing.expiresAt().isAfter(now)) {
            long token = tokens.incrementAndGet();
            result[0] = new ClaimResult.Acquired(token);
            return inProgress(fingerprint, token, now);
          }
          if (!existing.fingerprint().equals(fingerprint)) {
            result[0] = new ClaimResult.FingerprintMismatch();
            return existing;
          }
          if (existing.completed()) {
            result[0] = new ClaimResult.Completed(existing.response(), existing.expiresAt());
            return existing;
          }
          if (existing.leaseExpiresAt().isAfter(now)) {
            result[0] = new ClaimResult.InProgress(existing.leaseExpiresAt());
            return existing;
          }
          long token = tokens.incrementAndGet();
          result[0] = new ClaimResult.TakenOver(token, existing.token());
          return inProgress(fingerprint, token, now);
        });
    return result[0];
  }

  private Entry inProgress(Fingerprint fingerprint, long token, Instant now) {
    return new Entry(fingerprint, token, now.plus(lease), null, now.plus(ttl));
  }

  @Override
  public boolean complete(IdempotencyKey key, long token, StoredResponse response) {
    Instant now = clock.instant();
    return updateHeld(
        key,
        token,
        now,
        held -> new Entry(held.fingerprint(), token, null, response, now.plus(ttl)));
  }

  /** Releasing marks the key expired now, as the PostgreSQL store does; the purge removes it. */
  @Override
  public boolean release(IdempotencyKey key, long token) {
    Instant now = clock.instant();
    return updateHeld(
        key, token, now, held -> new Entry(held.fingerprint(), token, now, null, now));
  }

  @Override
  public boolean renew(IdempotencyKey key, long token) {
    Instant now = clock.instant();
    Instant leaseExpiresAt = now.plus(lease);
    return updateHeld(
        key,
        token,
        now,
        held -> {
          Instant expiresAt =
              held.expiresAt().isAfter(leaseExpiresAt) ? held.expiresAt() : leaseExpiresAt;
          return new Entry(held.fingerprint(), token, leaseExpiresAt, null, expiresAt);
        });
  }

  private boolean updateHeld(
      IdempotencyKey key, long token, Instant now, UnaryOperator<Entry> update) {
    boolean[] updated = new boolean[1];
    entries.computeIfPresent(
        key,
        (k, existing) -> {
          if (isHeldWith(existing, token, now)) {
            updated[0] = true;
            return update.apply(existing);
          }
          return existing;
        });
    return updated[0];
  }

  /** Held with {@code token}: in progress, that token, and neither expired nor released. */
  private static boolean isHeldWith(Entry entry, long token, Instant now) {
    return !entry.completed() && entry.token() == token && entry.expiresAt().isAfter(now);
  }

  @Override
  public int purgeExpired() {
    Instant now = clock.instant();
    int[] deleted = new int[1];
    entries.forEach(
        (key, entry) -> {
          if (!entry.expiresAt().isAfter(now) && entries.remove(key, entry)) {
            deleted[0]++;
          }
        });
    return deleted[0];
  }

  @Override
  public void close() {}
}
