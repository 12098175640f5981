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

  long rows() throws SQLException {
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement();
        ResultSet count =
            statement.executeQuery("SELECT count(*) FROM " + table.qualifiedTable())) {
      count.next();
      return count.getLong(1);
    }
  }

  @Test
  void purgeExpired_twoStoresAtOnce_onlyOnePurgesAndTableEndsBounded() throws Exception {
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
        assertThat(first + other).isEqualTo(expired);
        assertThat(first == 0 || other == 0).as("one purger: %d and %d", first, other).isTrue();
      } finally {
        pool.shutdownNow();
      }
    }
    assertThat(rows()).isEqualTo(1);
    assertThat(store.claim(live, fingerprint("a"))).isInstanceOf(ClaimResult.Completed.class);
  }

  @Test
  void purgeExpired_whileAnotherSessionHoldsThePurgeLock_returnsZero() throws Exception {
    store.claim(key(), fingerprint("a"));
    clock.advance(LEASE);
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
      clock.advance(LEASE);
      assertThat(small.purgeExpired()).isEqualTo(30);
      assertThat(rows()).isZero();
    }
  }

  @Test
  void claim_whileBatchesAreBeingWritten_claimsQueuedBehindThemGoTogether() throws Exception {
    PostgresStore postgres = (PostgresStore) store;
    int leaders = GroupCommit.MAX_LEADERS;
    List<IdempotencyKey> blockers = new ArrayList<>();
    for (int i = 0; i < leaders; i++) {
      IdempotencyKey blocker = key();
      postgres.claim(blocker, fingerprint("a"));
      blockers.add(blocker);
    }
    clock.advance(LEASE); // lapsed: the next claim of each takes its row over, and waits on a lock
    List<IdempotencyKey> keys = new ArrayList<>();
    for (int i = 0; i < 20; i++) {
      keys.add(key());
    }
    ExecutorService threads = Executors.newFixedThreadPool(leaders + keys.size());
    try (Connection locker = TestDatabase.dataSource().getConnection();
        Statement lock = locker.createStatement()) {
      locker.setAutoCommit(false);
      lock.execute("SELECT 1 FROM " + table.qualifiedTable() + " FOR UPDATE");
      List<Future<ClaimResult>> blocked = new ArrayList<>();
      for (IdempotencyKey blocker : blockers) {
        blocked.add(threads.submit(() -> postgres.claim(blocker, fingerprint("a"))));
        Thread.sleep(100); // each in a batch of its own, each waiting on its row
      }
      List<Future<ClaimResult>> queued = new ArrayList<>();
      for (IdempotencyKey key : keys) {
        queued.add(threads.submit(() -> postgres.claim(key, fingerprint("b"))));
      }
      Thread.sleep(500); // every leader is busy: the 20 wait in the queue
      locker.rollback();

      for (Future<ClaimResult> claim : blocked) {
        assertThat(claim.get()).isInstanceOf(ClaimResult.TakenOver.class);
      }
      List<Long> tokens = new ArrayList<>();
      for (Future<ClaimResult> claim : queued) {
        tokens.add(tokenOf(claim.get()));
      }
      assertThat(tokens).doesNotHaveDuplicates().hasSize(20);
    } finally {
      threads.shutdownNow();
    }
    // 2 × leaders claims alone, then the 20 in at most as many batches as there are leaders
    // (an average of at least 24 / 6 = 4 with two leaders): one statement per claim averages 1.
    assertThat(postgres.averageClaimBatchSize()).isGreaterThanOrEqualTo(2.0);
    for (IdempotencyKey key : keys) {
      assertThat(store.claim(key, fingerprint("b"))).isInstanceOf(ClaimResult.InProgress.class);
    }
  }

  @Test
  void complete_whileBatchesAreBeingWritten_completionsQueuedBehindThemGoTogether()
      throws Exception {
    PostgresStore postgres = (PostgresStore) store;
    int leaders = GroupCommit.MAX_LEADERS;
    Map<IdempotencyKey, Long> blockers = new LinkedHashMap<>();
    Map<IdempotencyKey, Long> keys = new LinkedHashMap<>();
    for (int i = 0; i < leaders + 20; i++) {
      IdempotencyKey key = key();
      (i < leaders ? blockers : keys).put(key, tokenOf(postgres.claim(key, fingerprint("a"))));
    }
    ExecutorService threads = Executors.newFixedThreadPool(leaders + keys.size());
    try (Connection locker = TestDatabase.dataSource().getConnection();
        Statement lock = locker.createStatement()) {
      locker.setAutoCommit(false);
      lock.execute("SELECT 1 FROM " + table.qualifiedTable() + " FOR UPDATE");
      List<Future<Boolean>> blocked = new ArrayList<>();
      for (Map.Entry<IdempotencyKey, Long> blocker : blockers.entrySet()) {
        blocked.add(threads.submit(
            () -> postgres.complete(blocker.getKey(), blocker.getValue(), response("b"))));
        Thread.sleep(100); // each in a batch of its own, each waiting on its row
      }
      List<Future<Boolean>> queued = new ArrayList<>();
      for (Map.Entry<IdempotencyKey, Long> key : keys.entrySet()) {
        queued.add(threads.submit(
            () -> postgres.complete(key.getKey(), key.getValue(), response("q"))));
      }
      Thread.sleep(500); // every leader is busy: the 20 wait in the queue
      locker.rollback();

      for (Future<Boolean> completion : blocked) {
        assertThat(completion.get()).isTrue();
      }
      for (Future<Boolean> completion : queued) {
        assertThat(completion.get()).isTrue();
      }
    } finally {
      threads.shutdownNow();
    }
    // The blockers alone, then the 20 in at most as many batches as there are leaders: one
    // statement per completion averages 1.
    assertThat(postgres.averageCompletionBatchSize()).isGreaterThanOrEqualTo(2.0);
    for (IdempotencyKey key : keys.keySet()) {
      ClaimResult replay = store.claim(key, fingerprint("a"));
      assertThat(replay).isInstanceOf(ClaimResult.Completed.class);
      assertThat(((ClaimResult.Completed) replay).response().body()).isEqualTo("q".getBytes());
    }
    // A second completion with the same token changes nothing and answers true; a stale one false.
    Map.Entry<IdempotencyKey, Long> first = keys.entrySet().iterator().next();
    assertThat(postgres.complete(first.getKey(), first.getValue(), response("other"))).isTrue();
    assertThat(postgres.complete(first.getKey(), first.getValue() + 1000, response("x"))).isFalse();
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
}
