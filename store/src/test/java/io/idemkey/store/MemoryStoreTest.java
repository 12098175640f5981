package io.idemkey.store;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;

class MemoryStoreTest extends IdempotencyStoreContract {

  private MemoryStore shared;

  @Override
  IdempotencyStore newStore(MutableClock clock) {
    shared = new MemoryStore(clock, TTL, LEASE, StoreBuilder.DEFAULT_CACHE_MAX_BYTES);
    return shared;
  }

  /** In memory there is no second node: the same instance stands in for it. */
  @Override
  IdempotencyStore storeWithTtl(MutableClock clock, java.time.Duration ttl) {
    return new MemoryStore(clock, ttl, LEASE, StoreBuilder.DEFAULT_CACHE_MAX_BYTES);
  }

  @Override
  IdempotencyStore secondStore(MutableClock clock) {
    return shared;
  }

  private MemoryStore sequence;

  @Override
  IdempotencyStore newSequenceStore(MutableClock clock) {
    sequence = new MemoryStore(clock, TTL, LEASE, StoreBuilder.DEFAULT_CACHE_MAX_BYTES, true);
    return sequence;
  }

  @Override
  IdempotencyStore secondSequenceStore(MutableClock clock) {
    return sequence;
  }

  @Test
  void complete_pastByteBudget_evictsCompletedKeysButNeverOneInProgress() {
    long budget = 64 * 1024;
    MemoryStore bounded = new MemoryStore(clock, TTL, LEASE, budget);
    IdempotencyKey running = key();
    long runningToken = tokenOf(bounded.claim(running, fingerprint("running")));
    List<IdempotencyKey> done = new java.util.ArrayList<>();
    for (int i = 0; i < 1000; i++) {
      IdempotencyKey key = key();
      long token = tokenOf(bounded.claim(key, fingerprint("a")));
      assertThat(bounded.complete(key, token, kilobyte(i))).isTrue();
      done.add(key);
    }

    bounded.purgeExpired();

    assertThat(bounded.completedBytes()).isPositive().isLessThanOrEqualTo(budget);
    long held =
        done.stream()
            .filter(key -> bounded.claim(key, fingerprint("a")) instanceof ClaimResult.Completed)
            .count();
    assertThat(held).isBetween(1L, budget / 1024);
    assertThat(bounded.claim(running, fingerprint("running")))
        .isInstanceOf(ClaimResult.InProgress.class);
    assertThat(bounded.complete(running, runningToken, kilobyte(-1))).isTrue();
  }

  @Test
  void claim_keyEvictedForBudget_runsAgainWithHigherToken() {
    MemoryStore bounded = new MemoryStore(clock, TTL, LEASE, 16 * 1024);
    java.util.Map<IdempotencyKey, Long> tokens = new java.util.LinkedHashMap<>();
    for (int i = 0; i < 200; i++) {
      IdempotencyKey key = key();
      long token = tokenOf(bounded.claim(key, fingerprint("a")));
      bounded.complete(key, token, kilobyte(i));
      tokens.put(key, token);
    }
    bounded.purgeExpired();

    // Which keys Caffeine keeps is its choice; most of the 200 cannot fit in 16 KiB.
    long runAgain =
        tokens.entrySet().stream()
            .filter(done -> {
              ClaimResult again = bounded.claim(done.getKey(), fingerprint("a"));
              if (again instanceof ClaimResult.Completed) {
                return false;
              }
              assertThat(again).isInstanceOf(ClaimResult.Acquired.class);
              assertThat(tokenOf(again)).isGreaterThan(done.getValue());
              return true;
            })
            .count();
    assertThat(runAgain).isGreaterThanOrEqualTo(200 - 16);
  }

  @Test
  void complete_noBudget_keepsEveryCompletedKey() {
    MemoryStore unbounded = new MemoryStore(clock, TTL, LEASE, 0);
    List<IdempotencyKey> done = new java.util.ArrayList<>();
    for (int i = 0; i < 200; i++) {
      IdempotencyKey key = key();
      unbounded.complete(key, tokenOf(unbounded.claim(key, fingerprint("a"))), kilobyte(i));
      done.add(key);
    }
    unbounded.purgeExpired();

    assertThat(done)
        .allSatisfy(key -> assertThat(unbounded.claim(key, fingerprint("a")))
            .isInstanceOf(ClaimResult.Completed.class));
  }

  private static StoredResponse kilobyte(int i) {
    return new StoredResponse(
        201, List.of(new ResponseHeader("Location", "/payments/" + i)), new byte[1024], true);
  }

  /** Issue 23, item 2, in the memory store: a key released after a step outlives the floor. */
  @Test
  void claim_sequenceKeyReleasedBy5xxWithStoredStepAfterHigherKeyPurged_runsAndReusesTheStep() {
    try (IdempotencyStore memory = StoreBuilder.memory().clock(clock).sequenceKeys(true)
        .purgeInterval(java.time.Duration.ZERO).build()) {
      sent(memory, "client", 8);
      clock.advance(java.time.Duration.ofHours(1));
      IdempotencyKey seven = sequenceKey("client", 7);
      long token = tokenOf(memory.claim(seven, fingerprint("a")));
      byte[] charge = {1, 2, 3};
      assertThat(memory.steps().save(seven, token, fingerprint("a"), "charge", charge)).isTrue();
      assertThat(memory.release(seven, token)).isTrue();
      clock.advance(TTL.minusHours(1));
      assertThat(memory.purgeExpired()).isEqualTo(1);

      // Released, it is kept as a lapsed lease: its retry runs and reuses its step.
      assertThat(memory.claim(seven, fingerprint("a"))).isInstanceOf(ClaimResult.Held.class);
      assertThat(memory.steps().find(seven, fingerprint("a"), "charge")).hasValue(charge);

      clock.advance(java.time.Duration.ofHours(2)); // its step result has expired, and its lease
      memory.purgeExpired();
      assertThat(memory.claim(sequenceKey("client", 6), fingerprint("a")))
          .isInstanceOf(ClaimResult.KeyExpired.class);
    }
  }
}
