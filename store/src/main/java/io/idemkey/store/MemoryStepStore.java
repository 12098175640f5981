package io.idemkey.store;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;

/**
 * Step results held in this process's memory, beside a {@link MemoryStore}: lost on restart and
 * not shared between processes.
 *
 * <p>Thread-safe: a result is stored while the memory store holds the key's lock, after checking
 * the token there ({@link MemoryStore#whileHeld}), so a take-over cannot come between the check
 * and the write.
 */
final class MemoryStepStore implements StepStore {

  /** One step of one request. */
  private record Step(IdempotencyKey key, Fingerprint fingerprint, String name) {}

  private record Result(byte[] bytes, Instant expiresAt) {}

  /** One request: its key and fingerprint. */
  private record Request(IdempotencyKey key, Fingerprint fingerprint) {}

  private final ConcurrentMap<Step, Result> results = new ConcurrentHashMap<>();
  /** When the last result of each request that stored one expires. */
  private final ConcurrentMap<Request, Instant> keptUntil = new ConcurrentHashMap<>();
  private final MemoryStore keys;
  private final Clock clock;
  private final Duration ttl;

  MemoryStepStore(MemoryStore keys, Clock clock, Duration ttl) {
    this.keys = keys;
    this.clock = clock;
    this.ttl = ttl;
    keys.resumableBy(this::holdsResultOf);
  }

  /**
   * Whether the request ({@code key}, {@code fingerprint}) has a step result that has not
   * expired: with sequence keys, its key is then not used up (SPEC §13).
   */
  boolean holdsResultOf(IdempotencyKey key, Fingerprint fingerprint) {
    Instant until = keptUntil.get(new Request(key, fingerprint));
    return until != null && until.isAfter(clock.instant());
  }

  @Override
  public Optional<byte[]> find(IdempotencyKey key, Fingerprint fingerprint, String name) {
    Result result = results.get(new Step(key, fingerprint, name));
    return result == null || !result.expiresAt().isAfter(clock.instant())
        ? Optional.empty()
        : Optional.of(result.bytes().clone());
  }

  @Override
  public boolean save(
      IdempotencyKey key, long token, Fingerprint fingerprint, String name, byte[] result) {
    Result stored = new Result(Arrays.copyOf(result, result.length), clock.instant().plus(ttl));
    return keys.whileHeld(key, token, fingerprint, () -> {
      results.put(new Step(key, fingerprint, name), stored);
      keptUntil.merge(new Request(key, fingerprint), stored.expiresAt(),
          (a, b) -> a.isAfter(b) ? a : b);
    });
  }

  @Override
  public int purgeExpired() {
    Instant now = clock.instant();
    int[] deleted = new int[1];
    results.forEach((step, result) -> {
      if (!result.expiresAt().isAfter(now) && results.remove(step, result)) {
        deleted[0]++;
      }
    });
    keptUntil.forEach((request, until) -> {
      if (!until.isAfter(now)) {
        keptUntil.remove(request, until);
      }
    });
    return deleted[0];
  }
}
