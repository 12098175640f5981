package io.idemkey.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.migrations.TableName;
import org.junit.jupiter.api.Test;

class CachingStoreTest extends IdempotencyStoreContract {

  TableName table;

  @Override
  IdempotencyStore newStore(MutableClock clock) {
    table = TestDatabase.freshTable();
    return new CachingStore(
        new PostgresStore(TestDatabase.dataSource(), table, clock, TTL, LEASE, 100, null),
        1 << 20,
        clock);
  }

  @Override
  IdempotencyStore storeWithTtl(MutableClock clock, java.time.Duration ttl) {
    return new CachingStore(
        new PostgresStore(TestDatabase.dataSource(), table, clock, ttl, LEASE, 100, null),
        1 << 20, clock);
  }

  @Override
  IdempotencyStore secondStore(MutableClock clock) {
    HikariDataSource pool = TestDatabase.newPool(20);
    return new CachingStore(
        new PostgresStore(pool, table, clock, TTL, LEASE, 100, pool), 1 << 20, clock);
  }

  /** A caching store whose database can be taken away: then only the cache can answer. */
  private IdempotencyStore storeOnOwnPool(HikariDataSource pool) {
    return new CachingStore(
        new PostgresStore(pool, table, clock, TTL, LEASE, 100, pool), 1 << 20, clock);
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
            10_000,
            clock);
    IdempotencyKey key = key();
    StoredResponse big = new StoredResponse(200, java.util.List.of(), new byte[50_000], true);
    tiny.complete(key, tokenOf(tiny.claim(key, fingerprint("a"))), big);

    assertThat(((ClaimResult.Completed) tiny.claim(key, fingerprint("a"))).response())
        .isEqualTo(big);
    assertThat(((ClaimResult.Completed) tiny.claim(key, fingerprint("a"))).response())
        .isEqualTo(big);
  }

}
