package io.idemkey.store;

import static io.idemkey.store.IdempotencyStoreContract.fingerprint;
import static io.idemkey.store.IdempotencyStoreContract.response;
import static io.idemkey.store.IdempotencyStoreContract.sent;
import static io.idemkey.store.IdempotencyStoreContract.sequenceKey;
import static io.idemkey.store.IdempotencyStoreContract.tokenOf;
import static org.assertj.core.api.Assertions.assertThat;

import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.migrations.TableName;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Issue 23, item 2: the floor of sequence keys (SPEC §13) never passes a key that is still
 * unsettled. A key whose request died (its lease lapsed) or was released by a 5xx, an exception
 * or a rollback after a step result was stored, is retried after a higher key of its scope was
 * completed, expired and purged: the retry runs, once, and reuses the step, instead of 409
 * {@code key-expired} (whose advice, a new key, charged the card a second time).
 *
 * <p>Two nodes on one table, built as an application builds them, with PostgreSQL's time moved by
 * a settable clock; no test waits out a lease or a ttl.
 */
class SequenceKeysUnsettledTest {

  static final Duration TTL = Duration.ofHours(24);
  static final Duration LEASE = Duration.ofSeconds(30);
  static final String SCOPE = "client";

  final MutableClock clock = MutableClock.atEpochDay();
  TableName table;
  HikariDataSource secondPool;
  IdempotencyStore nodeA;
  IdempotencyStore nodeB;

  @BeforeEach
  void startTwoNodes() {
    table = TestDatabase.freshTable();
    secondPool = TestDatabase.newPool(5);
    // Both made before the clock moves: a store's test clock counts from when it was made.
    nodeA = node(TestDatabase.dataSource());
    nodeB = node(secondPool);
  }

  @AfterEach
  void stopNodes() {
    nodeA.close();
    nodeB.close();
    secondPool.close();
  }

  IdempotencyStore node(javax.sql.DataSource dataSource) {
    return StoreBuilder.postgres(dataSource)
        .tableName(table)
        .migrate(false)
        .clock(clock)
        .ttl(TTL)
        .lease(LEASE)
        .sequenceKeys(true)
        .purgeInterval(Duration.ZERO)
        .build();
  }

  static byte[] charge(String id) {
    return ("{\"charge\":\"" + id + "\"}").getBytes(StandardCharsets.UTF_8);
  }

  /** Key 8 is sent first and completes; an hour later, key 7 starts on node B. */
  long keySevenChargedOnB() {
    sent(nodeA, SCOPE, 8);
    clock.advance(Duration.ofHours(1));
    long token = tokenOf(nodeB.claim(sequenceKey(SCOPE, 7), fingerprint("a")));
    assertThat(nodeB.steps().save(sequenceKey(SCOPE, 7), token, fingerprint("a"), "charge",
        charge("ch_7"))).isTrue();
    return token;
  }

  /** 8 has expired (7's step result, stored an hour later, has not) and the purge removes it. */
  void higherKeyExpiresAndIsPurged() {
    clock.advance(TTL.minusHours(1));
    assertThat(nodeA.purgeExpired()).isPositive();
    // 8 is used up: the floor rose to it.
    assertThat(nodeA.claim(sequenceKey(SCOPE, 8), fingerprint("a")))
        .isInstanceOf(ClaimResult.KeyExpired.class);
  }

  @Test
  void claim_deadNodesKeyWithStoredStepAfterHigherKeyPurged_takesOverAndReusesTheStep() {
    long deadToken = keySevenChargedOnB(); // then B dies: 7 is never completed nor renewed
    higherKeyExpiresAndIsPurged();

    ClaimResult retry = nodeA.claim(sequenceKey(SCOPE, 7), fingerprint("a"));

    assertThat(retry).isInstanceOf(ClaimResult.TakenOver.class);
    assertThat(((ClaimResult.TakenOver) retry).previousToken()).isEqualTo(deadToken);
    assertThat(nodeA.steps().find(sequenceKey(SCOPE, 7), fingerprint("a"), "charge"))
        .hasValueSatisfying(result -> assertThat(result).isEqualTo(charge("ch_7")));
    assertThat(nodeA.complete(sequenceKey(SCOPE, 7), tokenOf(retry), response("paid")))
        .isTrue();
    assertThat(nodeB.claim(sequenceKey(SCOPE, 7), fingerprint("a")))
        .isInstanceOf(ClaimResult.Completed.class);
  }

  @Test
  void claim_deadNodesKeyWithoutStepAfterHigherKeyPurged_takesOver() {
    sent(nodeA, SCOPE, 8);
    clock.advance(Duration.ofHours(1));
    long deadToken = tokenOf(nodeB.claim(sequenceKey(SCOPE, 7), fingerprint("a")));
    higherKeyExpiresAndIsPurged();

    ClaimResult retry = nodeA.claim(sequenceKey(SCOPE, 7), fingerprint("a"));

    assertThat(retry).isInstanceOf(ClaimResult.TakenOver.class);
    assertThat(((ClaimResult.TakenOver) retry).previousToken()).isEqualTo(deadToken);
  }

  @Test
  void claim_keyReleasedBy5xxWithStoredStepAfterHigherKeyPurged_runsOnceAndReusesTheStep() {
    long token = keySevenChargedOnB();
    // The handler answered 503 after its charge was stored: the key is released.
    assertThat(nodeB.release(sequenceKey(SCOPE, 7), token)).isTrue();
    higherKeyExpiresAndIsPurged();

    ClaimResult retry = nodeA.claim(sequenceKey(SCOPE, 7), fingerprint("a"));

    assertThat(retry).isInstanceOf(ClaimResult.Held.class);
    assertThat(nodeA.steps().find(sequenceKey(SCOPE, 7), fingerprint("a"), "charge"))
        .hasValueSatisfying(result -> assertThat(result).isEqualTo(charge("ch_7")));
    // Concurrent retries while it runs do not run it again; once completed, they replay.
    assertThat(nodeB.claim(sequenceKey(SCOPE, 7), fingerprint("a")))
        .isInstanceOf(ClaimResult.InProgress.class);
    assertThat(nodeA.complete(sequenceKey(SCOPE, 7), tokenOf(retry), response("paid")))
        .isTrue();
    ClaimResult again = nodeB.claim(sequenceKey(SCOPE, 7), fingerprint("a"));
    assertThat(again).isInstanceOf(ClaimResult.Completed.class);
    assertThat(((ClaimResult.Completed) again).response()).isEqualTo(response("paid"));
  }

  /**
   * Regression: a key released with no step result stored (its call to the processor timed out,
   * its outcome unknown) was refused as key-expired once a higher key was purged, and the
   * client's new key charged the card again. Its retry runs, with the same derived key.
   */
  @Test
  void claim_keyReleasedWithoutStepAfterHigherKeyPurged_runs() {
    sent(nodeA, SCOPE, 8);
    clock.advance(Duration.ofHours(1));
    IdempotencyKey seven = sequenceKey(SCOPE, 7);
    assertThat(nodeB.release(seven, tokenOf(nodeB.claim(seven, fingerprint("a"))))).isTrue();
    higherKeyExpiresAndIsPurged();

    assertThat(nodeA.claim(seven, fingerprint("a"))).isInstanceOf(ClaimResult.Held.class);
  }

  @Test
  void claim_releasedKeyWithStoredStepOtherFingerprintAfterHigherKeyPurged_runsWithoutItsSteps() {
    long token = keySevenChargedOnB();
    assertThat(nodeB.release(sequenceKey(SCOPE, 7), token)).isTrue();
    higherKeyExpiresAndIsPurged();

    // Released, the key is free within its ttl, as any released key is; the step result belongs
    // to the request that made it (SPEC §12), not to another one.
    assertThat(nodeA.claim(sequenceKey(SCOPE, 7), fingerprint("b")))
        .isInstanceOf(ClaimResult.Held.class);
    assertThat(nodeA.steps().find(sequenceKey(SCOPE, 7), fingerprint("b"), "charge")).isEmpty();
  }

  @Test
  void claim_releasedKeyAfterItsStepExpired_isKeyExpired() {
    long token = keySevenChargedOnB();
    assertThat(nodeB.release(sequenceKey(SCOPE, 7), token)).isTrue();
    higherKeyExpiresAndIsPurged();
    clock.advance(Duration.ofHours(1)); // 7's step result, a ttl old now, has expired
    nodeA.purgeExpired();

    assertThat(nodeA.claim(sequenceKey(SCOPE, 7), fingerprint("a")))
        .isInstanceOf(ClaimResult.KeyExpired.class);
  }

  @Test
  void purgeExpired_lapsedKey_keptUntilTtlAfterItsLeaseRanOutThenRemovedAndKeyExpired() {
    keySevenChargedOnB(); // B dies
    higherKeyExpiresAndIsPurged();
    // A ttl after 7's lease ran out, its step result (stored before that) has expired too.
    clock.advance(Duration.ofHours(1).plus(LEASE));

    assertThat(nodeA.purgeExpired()).isEqualTo(1);

    assertThat(nodeA.claim(sequenceKey(SCOPE, 7), fingerprint("a")))
        .isInstanceOf(ClaimResult.KeyExpired.class);
    assertThat(nodeA.claim(sequenceKey(SCOPE, 9), fingerprint("a")))
        .isInstanceOf(ClaimResult.Acquired.class);
  }

  @Test
  void claim_completedKeyPastItsTtl_isStillKeyExpiredBeforeAndAfterThePurge() {
    keySevenChargedOnB();
    clock.advance(TTL.minusHours(1));

    // 8 has expired and is not purged yet: refused from its own record.
    assertThat(nodeA.claim(sequenceKey(SCOPE, 8), fingerprint("a")))
        .isInstanceOf(ClaimResult.KeyExpired.class);
    nodeA.purgeExpired();
    assertThat(nodeA.claim(sequenceKey(SCOPE, 8), fingerprint("a")))
        .isInstanceOf(ClaimResult.KeyExpired.class);
    assertThat(nodeA.claim(sequenceKey(SCOPE, 6), fingerprint("a")))
        .isInstanceOf(ClaimResult.KeyExpired.class);
  }
}
