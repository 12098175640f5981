package io.idemkey.store;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
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
}
