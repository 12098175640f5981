package io.idemkey.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.migrations.TableName;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

class CachingStoreTest extends IdempotencyStoreContract {

  TableName table;

  @Override
  IdempotencyStore newStore(MutableClock clock) {
    table = TestDatabase.freshTable();
    return new CachingStore(
        new PostgresStore(TestDatabase.dataSource(), table, clock, TTL, LEASE, 100, null),
        1 << 20, TTL, LEASE, clock);
  }

  @Override
  IdempotencyStore storeWithTtl(MutableClock clock, java.time.Duration ttl) {
    return new CachingStore(
        new PostgresStore(TestDatabase.dataSource(), table, clock, ttl, LEASE, 100, null),
        1 << 20, ttl, LEASE, clock);
  }

  @Override
  IdempotencyStore secondStore(MutableClock clock) {
    HikariDataSource pool = TestDatabase.newPool(20);
    return new CachingStore(
        new PostgresStore(pool, table, clock, TTL, LEASE, 100, pool), 1 << 20, TTL, LEASE,
        clock);
  }

  TableName sequenceTable;

  @Override
  IdempotencyStore newSequenceStore(MutableClock clock) {
    sequenceTable = TestDatabase.freshTable();
    return new CachingStore(
        PostgresStoreTest.sequenceStore(TestDatabase.dataSource(), sequenceTable, clock, null),
        1 << 20, TTL, LEASE, clock);
  }

  @Override
  IdempotencyStore secondSequenceStore(MutableClock clock) {
    HikariDataSource pool = TestDatabase.newPool(20);
    return new CachingStore(
        PostgresStoreTest.sequenceStore(pool, sequenceTable, clock, pool), 1 << 20, TTL, LEASE,
        clock);
  }

  /** A caching store whose database can be taken away: then only the cache can answer. */
  private IdempotencyStore storeOnOwnPool(HikariDataSource pool) {
    return new CachingStore(
        new PostgresStore(pool, table, clock, TTL, LEASE, 100, pool), 1 << 20, TTL, LEASE,
        clock);
  }

  @Test
  void claim_completedKeyCached_answersWithoutDatabase() {
    HikariDataSource pool = TestDatabase.newPool(2);
    IdempotencyStore node = storeOnOwnPool(pool);
    IdempotencyKey key = key();
    node.complete(key, tokenOf(node.claim(key, fingerprint("a"))), response("cached"));
    assertThat(node.claim(key, fingerprint("a"))).isInstanceOf(ClaimResult.Completed.class);

    pool.close();

    ClaimResult hit = node.claim(key, fingerprint("a"));
    assertThat(((ClaimResult.Completed) hit).response()).isEqualTo(response("cached"));
    assertThat(node.claim(key, fingerprint("b")))
        .isInstanceOf(ClaimResult.FingerprintMismatch.class);
    assertThatThrownBy(() -> node.claim(key(), fingerprint("a")))
        .isInstanceOf(StoreUnavailableException.class);
  }

  @Test
  void claim_inProgressKey_isNeverCached() {
    HikariDataSource pool = TestDatabase.newPool(2);
    IdempotencyStore node = storeOnOwnPool(pool);
    IdempotencyKey key = key();
    node.claim(key, fingerprint("a"));
    assertThat(node.claim(key, fingerprint("a"))).isInstanceOf(ClaimResult.InProgress.class);

    pool.close();

    assertThatThrownBy(() -> node.claim(key, fingerprint("a")))
        .isInstanceOf(StoreUnavailableException.class);
  }

  @Test
  void claim_cachedKeyPastTtl_isNotAnsweredFromCache() {
    IdempotencyKey key = key();
    long token = tokenOf(store.claim(key, fingerprint("a")));
    store.complete(key, token, response("old"));
    assertThat(store.claim(key, fingerprint("a"))).isInstanceOf(ClaimResult.Completed.class);

    clock.advance(TTL);

    assertThat(store.claim(key, fingerprint("a"))).isInstanceOf(ClaimResult.Acquired.class);
  }

  @Test
  void cache_boundedByBytes_evictsButStillAnswersFromDatabase() {
    IdempotencyStore tiny =
        new CachingStore(
            new PostgresStore(TestDatabase.dataSource(), table, clock, TTL, LEASE, 100, null),
            10_000, TTL, LEASE, clock);
    IdempotencyKey key = key();
    StoredResponse big = new StoredResponse(200, java.util.List.of(), new byte[50_000], true);
    tiny.complete(key, tokenOf(tiny.claim(key, fingerprint("a"))), big);

    assertThat(((ClaimResult.Completed) tiny.claim(key, fingerprint("a"))).response())
        .isEqualTo(big);
    assertThat(((ClaimResult.Completed) tiny.claim(key, fingerprint("a"))).response())
        .isEqualTo(big);
  }

  /** A caching store whose database the test can switch off while it keeps the same pool. */
  private CachingStore storeOn(SwitchableDataSource source) {
    return new CachingStore(
        new PostgresStore(source, table, clock, TTL, LEASE, 100, null), 1 << 20, TTL, LEASE,
        clock);
  }

  @Test
  void claim_duplicateAfterCompletionOnSameNode_makesNoDatabaseCall() {
    SwitchableDataSource database = new SwitchableDataSource(TestDatabase.dataSource());
    CachingStore node = storeOn(database);
    IdempotencyKey key = key();
    assertThat(node.complete(key, tokenOf(node.claim(key, fingerprint("a"))), response("paid")))
        .isTrue();
    clock.advance(Duration.ofMinutes(1));

    database.failFromNow();
    ClaimResult duplicate = node.claim(key, fingerprint("a"));

    assertThat(duplicate).isInstanceOf(ClaimResult.Completed.class);
    assertThat(((ClaimResult.Completed) duplicate).response()).isEqualTo(response("paid"));
    assertThat(((ClaimResult.Completed) duplicate).timeToLive())
        .isBetween(TTL.minusMinutes(1).minusSeconds(5), TTL.minusMinutes(1));
    assertThat(node.claim(key, fingerprint("b")))
        .isInstanceOf(ClaimResult.FingerprintMismatch.class);
    assertThat(database.refused()).isZero();
  }

  @Test
  void claim_duplicateAfterTransactionalCommitOnSameNode_makesNoDatabaseCall() {
    SwitchableDataSource database = new SwitchableDataSource(TestDatabase.dataSource());
    CachingStore node = storeOn(database);
    IdempotencyKey key = key();
    long token = tokenOf(node.claim(key, fingerprint("a")));
    try (StoreTransaction transaction = node.beginTransaction(key, token)) {
      assertThat(transaction.commit(response("paid"))).isTrue();
    }

    database.failFromNow();
    ClaimResult duplicate = node.claim(key, fingerprint("a"));

    assertThat(duplicate).isInstanceOf(ClaimResult.Completed.class);
    assertThat(((ClaimResult.Completed) duplicate).response()).isEqualTo(response("paid"));
    assertThat(database.refused()).isZero();
  }

  @Test
  void claim_completionOnSameNodePastTtl_goesToDatabase() {
    SwitchableDataSource database = new SwitchableDataSource(TestDatabase.dataSource());
    CachingStore node = storeOn(database);
    IdempotencyKey key = key();
    node.complete(key, tokenOf(node.claim(key, fingerprint("a"))), response("paid"));
    clock.advance(TTL);

    database.failFromNow();

    assertThatThrownBy(() -> node.claim(key, fingerprint("a")))
        .isInstanceOf(StoreUnavailableException.class);
    assertThat(database.refused()).isPositive();
  }

  @Test
  void complete_staleToken_cachesNothing() {
    SwitchableDataSource database = new SwitchableDataSource(TestDatabase.dataSource());
    CachingStore node = storeOn(database);
    IdempotencyKey key = key();
    long stale = tokenOf(node.claim(key, fingerprint("a")));
    clock.advance(LEASE);
    tokenOf(node.claim(key, fingerprint("a")));
    assertThat(node.complete(key, stale, response("late"))).isFalse();

    database.failFromNow();

    assertThatThrownBy(() -> node.claim(key, fingerprint("a")))
        .isInstanceOf(StoreUnavailableException.class);
  }

  @Test
  void complete_afterAFailedAttempt_isNotCached() {
    SwitchableDataSource database = new SwitchableDataSource(TestDatabase.dataSource());
    CachingStore node = storeOn(database);
    IdempotencyKey key = key();
    long token = tokenOf(node.claim(key, fingerprint("a")));
    database.failFromNow();
    assertThatThrownBy(() -> node.complete(key, token, response("paid")))
        .isInstanceOf(StoreUnavailableException.class);
    database.serveAgain();
    // Had the failed attempt landed, this retry would answer true and store nothing: what it
    // carries is not known to be the record, so it is not cached. (Retried as the filter does:
    // the database known down is probed again only after a bound.)
    Boolean retried = null;
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    while (retried == null && System.nanoTime() < deadline) {
      try {
        retried = node.complete(key, token, response("paid"));
      } catch (StoreUnavailableException e) {
        Thread.onSpinWait();
      }
    }
    assertThat(retried).isTrue();

    database.failFromNow();

    assertThatThrownBy(() -> node.claim(key, fingerprint("a")))
        .isInstanceOf(StoreUnavailableException.class);
  }

  @Test
  void claim_neverCompleted_fingerprintForgottenAfterFourLeases() {
    CachingStore node = storeOn(new SwitchableDataSource(TestDatabase.dataSource()));
    for (int i = 0; i < 3; i++) {
      node.claim(key(), fingerprint("a"));
    }
    assertThat(node.heldKeys()).isEqualTo(3);

    clock.advance(LEASE.multipliedBy(4));

    assertThat(node.heldKeys()).isZero();
  }

  @Test
  void renew_heldKey_keepsFingerprintUntilCompletionFillsTheCache() {
    SwitchableDataSource database = new SwitchableDataSource(TestDatabase.dataSource());
    CachingStore node = storeOn(database);
    IdempotencyKey key = key();
    long token = tokenOf(node.claim(key, fingerprint("a")));
    for (int i = 0; i < 10; i++) {
      clock.advance(LEASE.dividedBy(2));
      assertThat(node.renew(key, token)).isTrue();
    }
    assertThat(node.complete(key, token, response("slow"))).isTrue();

    database.failFromNow();

    assertThat(((ClaimResult.Completed) node.claim(key, fingerprint("a"))).response())
        .isEqualTo(response("slow"));
    assertThat(node.heldKeys()).isZero();
  }

  @Test
  void release_heldKey_forgetsFingerprint() {
    CachingStore node = storeOn(new SwitchableDataSource(TestDatabase.dataSource()));
    IdempotencyKey key = key();
    long token = tokenOf(node.claim(key, fingerprint("a")));

    assertThat(node.release(key, token)).isTrue();

    assertThat(node.heldKeys()).isZero();
  }

  /**
   * Regression: a claim that finds a key completed cached it until "now + time left", with "now"
   * read after the database answered: a pause between the two (GC, a descheduled thread) made the
   * entry outlive the record, and it shadowed the key's next life.
   */
  @Test
  void claim_pauseAfterTheDatabaseAnswered_cachedEntryNeverOutlivesTheRecord() {
    PostgresStore database =
        new PostgresStore(TestDatabase.dataSource(), table, clock, TTL, LEASE, 100, null);
    PostgresStore otherNode =
        new PostgresStore(TestDatabase.dataSource(), table, clock, TTL, LEASE, 100, null);
    AtomicBoolean pauseAfterClaim = new AtomicBoolean();
    IdempotencyStore pausing = new ForwardingStore(database) {
      @Override
      public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
        ClaimResult result = store.claim(key, fingerprint);
        if (pauseAfterClaim.getAndSet(false)) {
          clock.advance(Duration.ofSeconds(3)); // the claiming thread stalls for 3 s here
        }
        return result;
      }
    };
    CachingStore node = new CachingStore(pausing, 1 << 20, TTL, LEASE, clock);
    IdempotencyKey key = key();

    // Another node runs the first request; ours has not seen the key.
    long first = tokenOf(otherNode.claim(key, fingerprint("first")));
    otherNode.complete(key, first, response("first"));
    clock.advance(TTL.minusSeconds(1)); // one second left

    pauseAfterClaim.set(true);
    assertThat(node.claim(key, fingerprint("first"))).isInstanceOf(ClaimResult.Completed.class);
    // Now 2 s past the record's expiry: the key is new (SPEC §7), and another request takes it.
    long second = tokenOf(otherNode.claim(key, fingerprint("second")));
    otherNode.complete(key, second, response("second"));

    // The key's second life answers, not the first one's cached entry (a 422 before).
    ClaimResult answer = node.claim(key, fingerprint("second"));
    assertThat(answer).isInstanceOf(ClaimResult.Completed.class);
    assertThat(((ClaimResult.Completed) answer).response().body()).isEqualTo("second".getBytes());
  }
}
