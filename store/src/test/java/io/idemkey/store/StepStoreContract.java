package io.idemkey.store;

import static io.idemkey.store.IdempotencyStoreContract.fingerprint;
import static io.idemkey.store.IdempotencyStoreContract.key;
import static io.idemkey.store.IdempotencyStoreContract.response;
import static io.idemkey.store.IdempotencyStoreContract.tokenOf;
import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The rules every {@link StepStore} keeps (SPEC §12), on stores built by {@link StoreBuilder};
 * time is driven by a {@link MutableClock}.
 */
abstract class StepStoreContract {

  static final Duration TTL = Duration.ofHours(1);
  static final Duration LEASE = Duration.ofSeconds(30);

  MutableClock clock;
  IdempotencyStore store;
  StepStore steps;

  /** A builder of a store on a fresh key space, before its clock, ttl and lease are set. */
  abstract StoreBuilder freshStore();

  @BeforeEach
  void setUp() {
    clock = MutableClock.atEpochDay();
    store = freshStore().clock(clock).ttl(TTL).lease(LEASE).purgeInterval(Duration.ZERO).build();
    steps = store.steps();
  }

  @AfterEach
  void tearDown() {
    store.close();
  }

  static byte[] bytes(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }

  static Optional<String> text(Optional<byte[]> result) {
    return result.map(bytes -> new String(bytes, StandardCharsets.UTF_8));
  }

  @Test
  void find_nothingStored_isEmpty() {
    IdempotencyKey key = key();
    store.claim(key, fingerprint("a"));

    assertThat(steps.find(key, fingerprint("a"), "charge")).isEmpty();
  }

  @Test
  void save_keyHeld_isFoundByTheSameRequestUnderItsName() {
    IdempotencyKey key = key();
    long token = tokenOf(store.claim(key, fingerprint("a")));

    assertThat(steps.save(key, token, fingerprint("a"), "charge", bytes("ch_1"))).isTrue();

    assertThat(text(steps.find(key, fingerprint("a"), "charge"))).hasValue("ch_1");
    assertThat(steps.find(key, fingerprint("a"), "refund")).isEmpty();
    assertThat(steps.find(key(), fingerprint("a"), "charge")).isEmpty();
  }

  @Test
  void save_emptyResult_isFoundEmpty() {
    IdempotencyKey key = key();
    long token = tokenOf(store.claim(key, fingerprint("a")));

    assertThat(steps.save(key, token, fingerprint("a"), "notify", new byte[0])).isTrue();

    assertThat(steps.find(key, fingerprint("a"), "notify")).hasValueSatisfying(
        result -> assertThat(result).isEmpty());
  }

  @Test
  void find_anotherFingerprint_seesNothing() {
    IdempotencyKey key = key();
    long token = tokenOf(store.claim(key, fingerprint("a")));
    steps.save(key, token, fingerprint("a"), "charge", bytes("ch_1"));

    assertThat(steps.find(key, fingerprint("b"), "charge")).isEmpty();
  }

  @Test
  void save_fingerprintNotTheHolders_isRefused() {
    IdempotencyKey key = key();
    long token = tokenOf(store.claim(key, fingerprint("a")));

    assertThat(steps.save(key, token, fingerprint("b"), "charge", bytes("ch_1"))).isFalse();
    assertThat(steps.find(key, fingerprint("b"), "charge")).isEmpty();
  }

  @Test
  void save_leaseTakenOver_isRefusedAndTheNewHolderStores() {
    IdempotencyKey key = key();
    long stale = tokenOf(store.claim(key, fingerprint("a")));
    clock.advance(LEASE.plusSeconds(1));
    long current = tokenOf(store.claim(key, fingerprint("a")));

    assertThat(steps.save(key, stale, fingerprint("a"), "charge", bytes("stale"))).isFalse();
    assertThat(steps.find(key, fingerprint("a"), "charge")).isEmpty();
    assertThat(steps.save(key, current, fingerprint("a"), "charge", bytes("ch_2"))).isTrue();
    assertThat(text(steps.find(key, fingerprint("a"), "charge"))).hasValue("ch_2");
  }

  @Test
  void find_afterRelease_stillFoundByTheRetry() {
    IdempotencyKey key = key();
    long first = tokenOf(store.claim(key, fingerprint("a")));
    steps.save(key, first, fingerprint("a"), "charge", bytes("ch_1"));
    store.release(key, first);

    long retry = tokenOf(store.claim(key, fingerprint("a")));

    assertThat(text(steps.find(key, fingerprint("a"), "charge"))).hasValue("ch_1");
    assertThat(steps.save(key, first, fingerprint("a"), "more", bytes("x"))).isFalse();
    assertThat(steps.save(key, retry, fingerprint("a"), "more", bytes("x"))).isTrue();
  }

  @Test
  void save_keyCompleted_isRefused() {
    IdempotencyKey key = key();
    long token = tokenOf(store.claim(key, fingerprint("a")));
    store.complete(key, token, response("done"));

    assertThat(steps.save(key, token, fingerprint("a"), "late", bytes("x"))).isFalse();
  }

  @Test
  void save_keyReleasedAndNotClaimedAgain_isRefused() {
    IdempotencyKey key = key();
    long token = tokenOf(store.claim(key, fingerprint("a")));
    store.release(key, token);

    assertThat(steps.save(key, token, fingerprint("a"), "late", bytes("x"))).isFalse();
  }

  @Test
  void save_sameStepAgainByANewerRun_replacesTheResult() {
    IdempotencyKey key = key();
    long first = tokenOf(store.claim(key, fingerprint("a")));
    steps.save(key, first, fingerprint("a"), "charge", bytes("old"));
    clock.advance(TTL.plusSeconds(1));
    // The key and its result expired: the same request is new again, and its step runs again.
    long again = tokenOf(store.claim(key, fingerprint("a")));
    assertThat(steps.find(key, fingerprint("a"), "charge")).isEmpty();

    assertThat(steps.save(key, again, fingerprint("a"), "charge", bytes("new"))).isTrue();

    assertThat(text(steps.find(key, fingerprint("a"), "charge"))).hasValue("new");
  }

  @Test
  void purgeExpired_afterTtl_deletesResultsAndKeepsLiveOnes() {
    IdempotencyKey old = key();
    long oldToken = tokenOf(store.claim(old, fingerprint("a")));
    steps.save(old, oldToken, fingerprint("a"), "charge", bytes("old"));
    clock.advance(TTL.minusSeconds(10));
    IdempotencyKey live = key();
    long liveToken = tokenOf(store.claim(live, fingerprint("a")));
    steps.save(live, liveToken, fingerprint("a"), "charge", bytes("live"));
    clock.advance(Duration.ofSeconds(20));

    assertThat(steps.find(old, fingerprint("a"), "charge")).isEmpty();
    assertThat(steps.purgeExpired()).isEqualTo(1);
    assertThat(steps.purgeExpired()).isZero();
    assertThat(text(steps.find(live, fingerprint("a"), "charge"))).hasValue("live");
  }

  @Test
  void purgeExpired_ofTheStore_purgesStepResultsToo() {
    IdempotencyKey key = key();
    long token = tokenOf(store.claim(key, fingerprint("a")));
    steps.save(key, token, fingerprint("a"), "charge", bytes("ch_1"));
    clock.advance(TTL.plusSeconds(1));

    store.purgeExpired();

    assertThat(steps.purgeExpired()).isZero();
  }
}
