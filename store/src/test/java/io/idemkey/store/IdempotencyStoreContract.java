package io.idemkey.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The rules every {@link IdempotencyStore} keeps. Each implementation runs this suite through a
 * subclass; time is driven by a {@link MutableClock}.
 */
abstract class IdempotencyStoreContract {

  static final Duration TTL = Duration.ofHours(24);
  static final Duration LEASE = Duration.ofSeconds(30);

  MutableClock clock;
  IdempotencyStore store;

  /** A store on a fresh, empty key space, reading time from {@code clock}. */
  abstract IdempotencyStore newStore(MutableClock clock);

  /** Another node on the same key space as {@link #store}, with its own time to live. */
  abstract IdempotencyStore storeWithTtl(MutableClock clock, Duration ttl);

  /** A second store on the same key space as {@link #store}: another node. */
  abstract IdempotencyStore secondStore(MutableClock clock);

  /**
   * A store with sequence keys (SPEC §13) on a fresh key space of its own, purging in small
   * batches, so that a purge commits many times while claims run.
   */
  abstract IdempotencyStore newSequenceStore(MutableClock clock);

  /** Another node on the key space of the last {@link #newSequenceStore}. */
  abstract IdempotencyStore secondSequenceStore(MutableClock clock);

  @BeforeEach
  void setUp() {
    clock = MutableClock.atEpochDay();
    store = newStore(clock);
  }

  @AfterEach
  void tearDown() {
    store.close();
  }

  static IdempotencyKey key() {
    return new IdempotencyKey("scope", UUID.randomUUID().toString());
  }

  static Fingerprint fingerprint(String request) {
    try {
      return new Fingerprint(
          MessageDigest.getInstance("SHA-256").digest(request.getBytes(StandardCharsets.UTF_8)));
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError(e);
    }
  }

  static StoredResponse response(String body) {
    return new StoredResponse(
        201,
        List.of(new ResponseHeader("Content-Type", "application/json"),
            new ResponseHeader("X-Multi", "a"), new ResponseHeader("X-Multi", "b")),
        body.getBytes(StandardCharsets.UTF_8),
        true);
  }

  static long tokenOf(ClaimResult result) {
    if (result instanceof ClaimResult.Acquired acquired) {
      return acquired.token();
    }
    if (result instanceof ClaimResult.TakenOver takenOver) {
      return takenOver.token();
    }
    throw new AssertionError("expected the key to be held, was " + result);
  }

  @Test
  void claim_newKey_acquires() {
    assertThat(store.claim(key(), fingerprint("a"))).isInstanceOf(ClaimResult.Acquired.class);
  }

  @Test
  void claim_heldKey_isInProgressUntilLeaseEnds() {
    IdempotencyKey key = key();
    store.claim(key, fingerprint("a"));
    clock.advance(Duration.ofSeconds(10));

    ClaimResult second = store.claim(key, fingerprint("a"));

    assertThat(second).isInstanceOf(ClaimResult.InProgress.class);
    assertThat(((ClaimResult.InProgress) second).leaseRemaining())
        .isBetween(LEASE.minusSeconds(11), LEASE.minusSeconds(10));
  }

  @Test
  void claim_afterLeaseRunsOut_takesOverWithHigherToken() {
    IdempotencyKey key = key();
    long first = tokenOf(store.claim(key, fingerprint("a")));
    clock.advance(LEASE);

    ClaimResult second = store.claim(key, fingerprint("a"));

    assertThat(second).isInstanceOf(ClaimResult.TakenOver.class);
    ClaimResult.TakenOver takenOver = (ClaimResult.TakenOver) second;
    assertThat(takenOver.previousToken()).isEqualTo(first);
    assertThat(takenOver.token()).isGreaterThan(first);
  }

  @Test
  void claim_differentFingerprint_isMismatchWhileInProgressAndCompleted() {
    IdempotencyKey key = key();
    long token = tokenOf(store.claim(key, fingerprint("a")));
    assertThat(store.claim(key, fingerprint("b")))
        .isInstanceOf(ClaimResult.FingerprintMismatch.class);

    store.complete(key, token, response("done"));

    assertThat(store.claim(key, fingerprint("b")))
        .isInstanceOf(ClaimResult.FingerprintMismatch.class);
  }

  @Test
  void claim_lapsedLeaseWithDifferentFingerprint_takesOver() {
    IdempotencyKey key = key();
    long first = tokenOf(store.claim(key, fingerprint("a")));
    clock.advance(LEASE.plusSeconds(1));

    ClaimResult other = store.claim(key, fingerprint("b"));

    assertThat(other).isInstanceOf(ClaimResult.TakenOver.class);
    assertThat(store.complete(key, first, response("late"))).isFalse();
  }

  @Test
  void claim_inProgressPastTtl_isGovernedByItsLeaseAlone() {
    Duration shortTtl = Duration.ofSeconds(2);
    try (IdempotencyStore node = storeWithTtl(clock, shortTtl)) {
      IdempotencyKey key = key();
      long token = tokenOf(node.claim(key, fingerprint("a")));
      clock.advance(shortTtl.plusSeconds(1));

      assertThat(node.claim(key, fingerprint("a"))).isInstanceOf(ClaimResult.InProgress.class);
      assertThat(node.complete(key, token, response("done"))).isTrue();
      assertThat(node.claim(key, fingerprint("a"))).isInstanceOf(ClaimResult.Completed.class);
    }
  }

  @Test
  void claim_completedKey_returnsStoredResponse() {
    IdempotencyKey key = key();
    long token = tokenOf(store.claim(key, fingerprint("a")));
    assertThat(store.complete(key, token, response("{\"id\":1}"))).isTrue();
    clock.advance(Duration.ofHours(1));

    ClaimResult replay = store.claim(key, fingerprint("a"));

    assertThat(replay).isInstanceOf(ClaimResult.Completed.class);
    ClaimResult.Completed completed = (ClaimResult.Completed) replay;
    assertThat(completed.response()).isEqualTo(response("{\"id\":1}"));
    assertThat(completed.timeToLive())
        .isBetween(TTL.minusHours(1).minusSeconds(1), TTL.minusHours(1));
  }

  @Test
  void claim_responseWithoutBody_roundTrips() {
    IdempotencyKey key = key();
    long token = tokenOf(store.claim(key, fingerprint("a")));
    StoredResponse withoutBody =
        StoredResponse.withoutBody(200, List.of(new ResponseHeader("X-Big", "yes")));
    store.complete(key, token, withoutBody);

    ClaimResult replay = store.claim(key, fingerprint("a"));

    assertThat(((ClaimResult.Completed) replay).response()).isEqualTo(withoutBody);
    assertThat(((ClaimResult.Completed) replay).response().bodyStored()).isFalse();
  }

  @Test
  void claim_afterTtl_isNewKeyWithHigherToken() {
    IdempotencyKey key = key();
    long first = tokenOf(store.claim(key, fingerprint("a")));
    store.complete(key, first, response("old"));
    clock.advance(TTL);

    ClaimResult again = store.claim(key, fingerprint("other request"));

    assertThat(again).isInstanceOf(ClaimResult.Acquired.class);
    assertThat(tokenOf(again)).isGreaterThan(first);
  }

  @Test
  void claim_afterRelease_acquiresWithHigherToken() {
    IdempotencyKey key = key();
    long first = tokenOf(store.claim(key, fingerprint("a")));

    assertThat(store.release(key, first)).isTrue();
    ClaimResult again = store.claim(key, fingerprint("a"));

    assertThat(again).isInstanceOf(ClaimResult.Acquired.class);
    assertThat(tokenOf(again)).isGreaterThan(first);
  }

  @Test
  void renew_currentToken_extendsLease() {
    IdempotencyKey key = key();
    long token = tokenOf(store.claim(key, fingerprint("a")));
    clock.advance(Duration.ofSeconds(20));

    assertThat(store.renew(key, token)).isTrue();
    clock.advance(Duration.ofSeconds(20));

    ClaimResult other = store.claim(key, fingerprint("a"));
    assertThat(other).isInstanceOf(ClaimResult.InProgress.class);
    assertThat(((ClaimResult.InProgress) other).leaseRemaining())
        .isBetween(LEASE.minusSeconds(21), LEASE.minusSeconds(20));
  }

  @Test
  void staleToken_completeReleaseAndRenew_areRefusedAndHolderUntouched() {
    IdempotencyKey key = key();
    long stale = tokenOf(store.claim(key, fingerprint("a")));
    clock.advance(LEASE);
    long current = tokenOf(store.claim(key, fingerprint("a")));

    assertThat(store.complete(key, stale, response("stale"))).isFalse();
    assertThat(store.release(key, stale)).isFalse();
    assertThat(store.renew(key, stale)).isFalse();

    assertThat(store.claim(key, fingerprint("a"))).isInstanceOf(ClaimResult.InProgress.class);
    assertThat(store.complete(key, current, response("current"))).isTrue();
    assertThat(((ClaimResult.Completed) store.claim(key, fingerprint("a"))).response())
        .isEqualTo(response("current"));
  }

  @Test
  void complete_againWithSameToken_isAcceptedAndChangesNothing() {
    IdempotencyKey key = key();
    long token = tokenOf(store.claim(key, fingerprint("a")));
    store.complete(key, token, response("first"));

    // A retry after a commit whose reply was lost: its own completion, not a stale token.
    assertThat(store.complete(key, token, response("second"))).isTrue();
    assertThat(store.release(key, token)).isFalse();
    assertThat(store.renew(key, token)).isFalse();
    assertThat(((ClaimResult.Completed) store.claim(key, fingerprint("a"))).response())
        .isEqualTo(response("first"));
  }

  @Test
  void releasedToken_cannotCompleteAfterwards() {
    IdempotencyKey key = key();
    long token = tokenOf(store.claim(key, fingerprint("a")));
    store.release(key, token);

    assertThat(store.complete(key, token, response("late"))).isFalse();
    assertThat(store.claim(key, fingerprint("a"))).isInstanceOf(ClaimResult.Acquired.class);
  }

  @Test
  void scopes_keepSameKeyApart() {
    String name = UUID.randomUUID().toString();
    IdempotencyKey alice = new IdempotencyKey("alice", name);
    IdempotencyKey bob = new IdempotencyKey("bob", name);

    assertThat(store.claim(alice, fingerprint("a"))).isInstanceOf(ClaimResult.Acquired.class);
    assertThat(store.claim(bob, fingerprint("b"))).isInstanceOf(ClaimResult.Acquired.class);
  }

  @Test
  void purgeExpired_removesOnlyExpiredKeys() {
    IdempotencyKey old = key();
    store.complete(old, tokenOf(store.claim(old, fingerprint("a"))), response("old"));
    IdempotencyKey released = key();
    store.release(released, tokenOf(store.claim(released, fingerprint("a"))));
    clock.advance(TTL.minusSeconds(1));
    IdempotencyKey fresh = key();
    store.complete(fresh, tokenOf(store.claim(fresh, fingerprint("a"))), response("fresh"));
    clock.advance(Duration.ofSeconds(1));

    // The released key was removed when released; the old one expired.
    assertThat(store.purgeExpired()).isEqualTo(1);
    assertThat(store.claim(released, fingerprint("a"))).isInstanceOf(ClaimResult.Acquired.class);

    assertThat(store.claim(fresh, fingerprint("a"))).isInstanceOf(ClaimResult.Completed.class);
    assertThat(store.purgeExpired()).isZero();
  }

  @Test
  void claim_32ThreadsOneKey_exactlyOneWinnerEachRound() throws Exception {
    assertOneWinnerPerRound(List.of(store), 32, 200);
  }

  @Test
  void claim_32ThreadsOneKeyOnTwoStores_exactlyOneWinnerEachRound() throws Exception {
    try (IdempotencyStore second = secondStore(clock)) {
      assertOneWinnerPerRound(List.of(store, second), 32, 100);
    }
  }

  private void assertOneWinnerPerRound(List<IdempotencyStore> stores, int threads, int rounds)
      throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      for (int round = 0; round < rounds; round++) {
        IdempotencyKey key = key();
        Fingerprint fingerprint = fingerprint("round " + round);
        CyclicBarrier start = new CyclicBarrier(threads);
        List<Future<ClaimResult>> results = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
          IdempotencyStore node = stores.get(t % stores.size());
          results.add(
              pool.submit(
                  () -> {
                    start.await();
                    return node.claim(key, fingerprint);
                  }));
        }
        int winners = 0;
        for (Future<ClaimResult> result : results) {
          ClaimResult claim = result.get();
          if (claim instanceof ClaimResult.Acquired) {
            winners++;
          } else {
            assertThat(claim).isInstanceOf(ClaimResult.InProgress.class);
          }
        }
        assertThat(winners).as("winners in round %d", round).isEqualTo(1);
      }
    } finally {
      pool.shutdownNow();
    }
  }

  static IdempotencyKey sequenceKey(String scope, long number) {
    return new IdempotencyKey(scope, Long.toString(number));
  }

  /** Claims and completes a sequence key: the request ran and its response is stored. */
  static void sent(IdempotencyStore store, String scope, long number) {
    IdempotencyKey key = sequenceKey(scope, number);
    assertThat(store.complete(key, tokenOf(store.claim(key, fingerprint("a"))), response("r")))
        .isTrue();
  }

  static ClaimResult claimSequence(IdempotencyStore store, String scope, long number) {
    return store.claim(sequenceKey(scope, number), fingerprint("a"));
  }

  @Test
  void purgeExpired_sequenceKeys_floorRisesOnlyOverPurgedRecords() {
    try (IdempotencyStore sequence = newSequenceStore(clock)) {
      sent(sequence, "client", 5);
      sent(sequence, "client", 8);
      clock.advance(Duration.ofHours(1));
      sent(sequence, "client", 10); // still live when 5 and 8 are purged
      clock.advance(TTL.minusHours(1));

      assertThat(sequence.purgeExpired()).isEqualTo(2);

      // The floor is 8, the highest purged key, not 10, whose record is kept.
      assertThat(claimSequence(sequence, "client", 8)).isInstanceOf(ClaimResult.KeyExpired.class);
      assertThat(claimSequence(sequence, "client", 5)).isInstanceOf(ClaimResult.KeyExpired.class);
      assertThat(claimSequence(sequence, "client", 7)).isInstanceOf(ClaimResult.KeyExpired.class);
      assertThat(claimSequence(sequence, "client", 0)).isInstanceOf(ClaimResult.KeyExpired.class);
      assertThat(claimSequence(sequence, "client", 9)).isInstanceOf(ClaimResult.Acquired.class);
      assertThat(claimSequence(sequence, "client", 10)).isInstanceOf(ClaimResult.Completed.class);
      assertThat(claimSequence(sequence, "client", 11)).isInstanceOf(ClaimResult.Acquired.class);
      // Another scope has a floor of its own.
      assertThat(claimSequence(sequence, "other", 1)).isInstanceOf(ClaimResult.Acquired.class);
    }
  }

  @Test
  void claim_sequenceKeyBelowFloorWithLiveRecord_isAnsweredFromItsRecord() {
    try (IdempotencyStore sequence = newSequenceStore(clock)) {
      sent(sequence, "client", 8);
      clock.advance(Duration.ofHours(1));
      // Skipped, then sent after 8: it runs while 8's record is kept.
      ClaimResult skipped = claimSequence(sequence, "client", 7);
      assertThat(skipped).isInstanceOf(ClaimResult.Acquired.class);
      sequence.complete(sequenceKey("client", 7), tokenOf(skipped), response("seven"));
      clock.advance(TTL.minusHours(1));

      assertThat(sequence.purgeExpired()).isEqualTo(1);

      // The floor is 8 now; 7's record is live, and answers.
      ClaimResult replay = claimSequence(sequence, "client", 7);
      assertThat(replay).isInstanceOf(ClaimResult.Completed.class);
      assertThat(((ClaimResult.Completed) replay).response()).isEqualTo(response("seven"));
      assertThat(claimSequence(sequence, "client", 6)).isInstanceOf(ClaimResult.KeyExpired.class);

      clock.advance(Duration.ofHours(1));
      assertThat(sequence.purgeExpired()).isEqualTo(1);
      assertThat(claimSequence(sequence, "client", 7)).isInstanceOf(ClaimResult.KeyExpired.class);
    }
  }

  @Test
  void claim_completedSequenceKeyExpiredBeforePurge_isKeyExpired() {
    try (IdempotencyStore sequence = newSequenceStore(clock)) {
      sent(sequence, "client", 3);
      clock.advance(TTL);

      assertThat(claimSequence(sequence, "client", 3)).isInstanceOf(ClaimResult.KeyExpired.class);
      assertThat(sequence.purgeExpired()).isEqualTo(1);
      assertThat(claimSequence(sequence, "client", 3)).isInstanceOf(ClaimResult.KeyExpired.class);
      assertThat(claimSequence(sequence, "client", 4)).isInstanceOf(ClaimResult.Acquired.class);
    }
  }

  /**
   * A lapsed lease of a sequence key is kept a ttl after it ran out (issue 23: the floor must not
   * pass it), then removed without raising the floor.
   */
  @Test
  void purgeExpired_lapsedLeaseOfSequenceKey_keptForTtlLeavesFloorAndRetryRuns() {
    try (IdempotencyStore sequence = newSequenceStore(clock)) {
      long dead = tokenOf(claimSequence(sequence, "client", 4)); // its node died
      tokenOf(claimSequence(sequence, "client", 5)); // so did this one's
      clock.advance(LEASE);

      assertThat(sequence.purgeExpired()).isZero();
      ClaimResult retry = claimSequence(sequence, "client", 4);
      assertThat(retry).isInstanceOf(ClaimResult.TakenOver.class);
      assertThat(((ClaimResult.TakenOver) retry).previousToken()).isEqualTo(dead);

      // 5's lease ran out a ttl ago; 4's, taken over, a lease later.
      clock.advance(TTL);
      assertThat(sequence.purgeExpired()).isEqualTo(1);

      assertThat(claimSequence(sequence, "client", 5)).isInstanceOf(ClaimResult.Acquired.class);
      assertThat(claimSequence(sequence, "client", 2)).isInstanceOf(ClaimResult.Acquired.class);
    }
  }

  @Test
  void claim_notASequenceKeyInSequenceMode_isRefusedBeforeTheStore() {
    try (IdempotencyStore sequence = newSequenceStore(clock)) {
      for (String key : List.of("abc", "-1", "+1", "07", "1.0", "9223372036854775808")) {
        assertThatThrownBy(() -> sequence.claim(new IdempotencyKey("client", key),
            fingerprint("a")))
            .as(key)
            .isInstanceOf(IllegalArgumentException.class);
      }
      assertThat(claimSequence(sequence, "client", Long.MAX_VALUE))
          .isInstanceOf(ClaimResult.Acquired.class);
    }
  }

  /**
   * Claims of keys around the floor from many threads on two nodes while the purge raises it,
   * batch by batch: a purged key never runs again, a live one is always answered from its record,
   * and a key never sent runs at most once.
   */
  @Test
  void claim_sequenceKeysAroundFloorWhilePurging_purgedNeverRunLiveNeverRefused()
      throws Exception {
    int threads = 16;
    int expired = 300;
    try (IdempotencyStore first = newSequenceStore(clock);
        IdempotencyStore second = secondSequenceStore(clock)) {
      // Even numbers are sent: 2..2*expired expire, the next as many are kept; odd ones never sent.
      for (int i = 1; i <= expired; i++) {
        sent(first, "client", 2L * i);
      }
      clock.advance(Duration.ofHours(1));
      for (int i = expired + 1; i <= 2 * expired; i++) {
        sent(first, "client", 2L * i);
      }
      clock.advance(TTL.minusHours(1));
      long highest = 4L * expired;

      Map<Long, List<ClaimResult>> results = new ConcurrentHashMap<>();
      ExecutorService pool = Executors.newFixedThreadPool(threads + 1);
      try {
        CyclicBarrier start = new CyclicBarrier(threads + 1);
        AtomicBoolean purged = new AtomicBoolean();
        Future<Integer> purge = pool.submit(() -> {
          start.await();
          try {
            return first.purgeExpired();
          } finally {
            purged.set(true);
          }
        });
        List<Future<?>> claimers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
          IdempotencyStore node = t % 2 == 0 ? first : second;
          claimers.add(pool.submit(() -> {
            start.await();
            ThreadLocalRandom random = ThreadLocalRandom.current();
            for (int n = 0; !purged.get() || n < 50; n++) {
              long number = 1 + random.nextLong(highest + 1);
              ClaimResult result = claimSequence(node, "client", number);
              results.computeIfAbsent(number, k -> new CopyOnWriteArrayList<>())
                  .add(result);
            }
            return null;
          }));
        }
        assertThat(purge.get()).isEqualTo(expired);
        for (Future<?> claimer : claimers) {
          claimer.get();
        }
      } finally {
        pool.shutdownNow();
      }
      assertThat(results).isNotEmpty();
      results.forEach((number, claims) -> {
        if (number % 2 == 0 && number <= 2L * expired) {
          assertThat(claims).as("purged key %d", number)
              .allSatisfy(c -> assertThat(c).isInstanceOf(ClaimResult.KeyExpired.class));
        } else if (number % 2 == 0 && number <= highest) {
          assertThat(claims).as("live key %d", number)
              .allSatisfy(c -> assertThat(c).isInstanceOf(ClaimResult.Completed.class));
        } else {
          assertThat(claims.stream().filter(c -> c instanceof ClaimResult.Held).count())
              .as("runs of key %d, never sent before", number).isLessThanOrEqualTo(1);
          assertThat(claims).as("key %d, never sent before", number)
              .allSatisfy(c -> assertThat(c).isInstanceOfAny(ClaimResult.Acquired.class,
                  ClaimResult.InProgress.class, ClaimResult.KeyExpired.class));
        }
      });
      // Once purged, every sent key up to the highest purged is used up.
      assertThat(claimSequence(first, "client", 2L * expired - 1))
          .isInstanceOfAny(ClaimResult.KeyExpired.class, ClaimResult.InProgress.class);
      assertThat(claimSequence(second, "client", 2L * expired + 1))
          .isInstanceOfAny(ClaimResult.Acquired.class, ClaimResult.InProgress.class);
    }
  }
}
