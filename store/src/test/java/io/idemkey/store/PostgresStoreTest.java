package io.idemkey.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.migrations.TableName;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

class PostgresStoreTest extends IdempotencyStoreContract {

  TableName table;

  @Override
  IdempotencyStore newStore(MutableClock clock) {
    table = TestDatabase.freshTable();
    return new PostgresStore(TestDatabase.dataSource(), table, clock, TTL, LEASE, 100, null);
  }

  @Override
  IdempotencyStore storeWithTtl(MutableClock clock, Duration ttl) {
    return new PostgresStore(TestDatabase.dataSource(), table, clock, ttl, LEASE, 100, null);
  }

  /** Another node: its own pool on the same table. */
  @Override
  IdempotencyStore secondStore(MutableClock clock) {
    HikariDataSource pool = TestDatabase.newPool(20);
    return new PostgresStore(pool, table, clock, TTL, LEASE, 100, pool);
  }

  TableName sequenceTable;

  @Override
  IdempotencyStore newSequenceStore(MutableClock clock) {
    sequenceTable = TestDatabase.freshTable();
    return sequenceStore(TestDatabase.dataSource(), sequenceTable, clock, null);
  }

  @Override
  IdempotencyStore secondSequenceStore(MutableClock clock) {
    HikariDataSource pool = TestDatabase.newPool(20);
    return sequenceStore(pool, sequenceTable, clock, pool);
  }

  /** A store with sequence keys that purges in batches of 10. */
  static PostgresStore sequenceStore(
      javax.sql.DataSource dataSource, TableName table, MutableClock clock, AutoCloseable pool) {
    return new PostgresStore(dataSource, table, clock, TTL, LEASE, Duration.ofSeconds(5), 10,
        false, false, true, null, true, pool);
  }

  long rows() throws SQLException {
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement();
        ResultSet count =
            statement.executeQuery("SELECT count(*) FROM " + table.qualifiedTable())) {
      count.next();
      return count.getLong(1);
    }
  }

  /**
   * Two nodes purging at once share the work, each batch done by one of them (the batch's
   * transaction-level lock elects it; see purgeExpired_whileAnotherSessionHoldsThePurgeLock):
   * every expired row is deleted once, and the table ends bounded.
   */
  @Test
  void purgeExpired_twoStoresAtOnce_eachBatchByOnePurgerAndTableEndsBounded() throws Exception {
    int expired = 2_500;
    for (int i = 0; i < expired; i++) {
      IdempotencyKey key = key();
      store.complete(key, tokenOf(store.claim(key, fingerprint("a"))), response("x"));
    }
    // Made before the clock moves: a store's test clock counts from when the store was made.
    IdempotencyStore second = secondStore(clock);
    clock.advance(TTL);
    IdempotencyKey live = key();
    store.complete(live, tokenOf(store.claim(live, fingerprint("a"))), response("live"));

    try (second) {
      List<IdempotencyStore> nodes = List.of(store, second);
      ExecutorService pool = Executors.newFixedThreadPool(2);
      try {
        CyclicBarrier start = new CyclicBarrier(2);
        List<Future<Integer>> purged = new ArrayList<>();
        for (IdempotencyStore node : nodes) {
          purged.add(
              pool.submit(
                  () -> {
                    start.await();
                    return node.purgeExpired();
                  }));
        }
        int first = purged.get(0).get();
        int other = purged.get(1).get();
        assertThat(first + other).as("purged by %d and %d", first, other).isEqualTo(expired);
      } finally {
        pool.shutdownNow();
      }
    }
    assertThat(rows()).isEqualTo(1);
    assertThat(store.claim(live, fingerprint("a"))).isInstanceOf(ClaimResult.Completed.class);
  }

  /**
   * A lapsed lease is not deleted before a ttl has passed since its claim (the purge finds rows
   * by creation, V6); meanwhile a claim takes it over, and the completion it gets is kept a ttl.
   */
  @Test
  void purgeExpired_lapsedLease_keptUntilATtlAfterItsClaimAndTakenOverMeanwhile()
      throws Exception {
    IdempotencyKey lapsed = key();
    store.claim(lapsed, fingerprint("a"));
    clock.advance(LEASE);
    assertThat(store.purgeExpired()).isZero();

    ClaimResult retry = store.claim(lapsed, fingerprint("a"));
    assertThat(retry).isInstanceOf(ClaimResult.TakenOver.class);
    store.complete(lapsed, ((ClaimResult.Held) retry).token(), response("done"));
    clock.advance(TTL.minus(LEASE));
    assertThat(store.purgeExpired()).as("completed a lease after its first claim").isZero();
    clock.advance(LEASE);
    assertThat(store.purgeExpired()).isEqualTo(1);
  }

  @Test
  void purgeExpired_whileAnotherSessionHoldsThePurgeLock_returnsZero() throws Exception {
    store.claim(key(), fingerprint("a"));
    clock.advance(TTL); // a lapsed in-progress row is purged a ttl after its creation
    try (Connection other = TestDatabase.dataSource().getConnection();
        Statement lock = other.createStatement()) {
      lock.execute("SELECT pg_advisory_lock(hashtext('idemkey.purge:" + table + "'))");
      try {
        assertThat(store.purgeExpired()).isZero();
      } finally {
        lock.execute("SELECT pg_advisory_unlock(hashtext('idemkey.purge:" + table + "'))");
      }
    }
    assertThat(store.purgeExpired()).isEqualTo(1);
  }

  @Test
  void purgeExpired_deletesInBatchesOfBatchSize() throws Exception {
    try (IdempotencyStore small =
        new PostgresStore(TestDatabase.dataSource(), table, clock, TTL, LEASE, 7, null)) {
      for (int i = 0; i < 30; i++) {
        small.claim(key(), fingerprint("a"));
      }
      clock.advance(TTL);
      assertThat(small.purgeExpired()).isEqualTo(30);
      assertThat(rows()).isZero();
    }
  }

  @Test
  void complete_sameTokenAgain_answersTrueAndChangesNothing_staleTokenFalse() {
    IdempotencyKey key = key();
    long token = tokenOf(store.claim(key, fingerprint("a")));
    assertThat(store.complete(key, token, response("q"))).isTrue();

    // A retry after a commit whose reply was lost finds its own completion.
    assertThat(store.complete(key, token, response("other"))).isTrue();
    assertThat(store.complete(key, token + 1000, response("x"))).isFalse();
    ClaimResult replay = store.claim(key, fingerprint("a"));
    assertThat(((ClaimResult.Completed) replay).response().body()).isEqualTo("q".getBytes());
  }

  @Test
  void claim_databaseUnreachable_failsFastWithStoreUnavailable() {
    try (IdempotencyStore unreachable =
        StoreBuilder.postgres("jdbc:postgresql://127.0.0.1:1/none", "u", "p")
            .migrate(false)
            .cacheMaxBytes(0)
            .purgeInterval(Duration.ZERO)
            .connectTimeout(Duration.ofMillis(500))
            .build()) {
      long start = System.nanoTime();
      assertThatThrownBy(() -> unreachable.claim(key(), fingerprint("a")))
          .isInstanceOf(StoreUnavailableException.class)
          .hasMessageContaining("claim on public.idempotency_keys failed");
      // Not a speed assertion: it proves the pool's 30 s default wait is not in play.
      assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(10));
    }
  }

  @Test
  void claim_afterCompletionWithLongBody_roundTripsBytes() {
    IdempotencyKey key = key();
    byte[] body = new byte[300_000];
    for (int i = 0; i < body.length; i++) {
      body[i] = (byte) i;
    }
    StoredResponse big = new StoredResponse(200, List.of(), body, true);
    store.complete(key, tokenOf(store.claim(key, fingerprint("a"))), big);

    assertThat(((ClaimResult.Completed) store.claim(key, fingerprint("a"))).response().body())
        .isEqualTo(body);
  }

  long count(String qualifiedTable) throws SQLException {
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement();
        ResultSet count = statement.executeQuery("SELECT count(*) FROM " + qualifiedTable)) {
      count.next();
      return count.getLong(1);
    }
  }

  @Test
  void purgeExpired_100000SequenceKeysOfOneClient_leaveOneFloorRow() throws Exception {
    int keys = 100_000;
    TableName table = TestDatabase.freshTable();
    try (IdempotencyStore sequence =
        new PostgresStore(TestDatabase.dataSource(), table, clock, TTL, LEASE,
            Duration.ofSeconds(5), StoreBuilder.DEFAULT_PURGE_BATCH_SIZE, false, false, true,
            null, true, null)) {
      // Completed a day ago and expired since, written as the claim and completion write them.
      try (Connection connection = TestDatabase.dataSource().getConnection();
          Statement statement = connection.createStatement()) {
        statement.executeUpdate("INSERT INTO " + table.qualifiedTable()
            + " (scope, idem_key, fingerprint, state, token, created_at, expires_at,"
            + " response_status, response_headers, response_body, body_stored)"
            + " SELECT 'client', g::text, '\\x00'::bytea, 'COMPLETED',"
            + " nextval('" + table.qualifiedTokenSequence() + "'),"
            + " now() - interval '2 days', now() - interval '1 day', 201, NULL, NULL, true"
            + " FROM generate_series(1, " + keys + ") g");
      }
      assertThat(count(table.qualifiedTable())).isEqualTo(keys);

      assertThat(sequence.purgeExpired()).isEqualTo(keys);

      long keyRows = count(table.qualifiedTable());
      long floorRows = count(table.qualifiedFloorsTable());
      System.out.printf("sequence keys: %d keys of one client purged: %d rows left in %s,"
          + " %d in %s%n", keys, keyRows, table, floorRows, table.floorsTable());
      assertThat(keyRows).isZero();
      assertThat(floorRows).isEqualTo(1);
      assertThat(sequence.claim(new IdempotencyKey("client", "1"), fingerprint("a")))
          .isInstanceOf(ClaimResult.KeyExpired.class);
      assertThat(sequence.claim(new IdempotencyKey("client", Integer.toString(keys)),
              fingerprint("a")))
          .isInstanceOf(ClaimResult.KeyExpired.class);
      assertThat(sequence.claim(new IdempotencyKey("client", Integer.toString(keys + 1)),
              fingerprint("a")))
          .isInstanceOf(ClaimResult.Acquired.class);
    }
  }
}
