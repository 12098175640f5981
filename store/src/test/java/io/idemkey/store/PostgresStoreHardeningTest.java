package io.idemkey.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.migrations.TableName;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The PostgreSQL store with the pools, clocks and failures of real deployments (issue 8): pools
 * that hand out {@code autoCommit=false} or REPEATABLE READ connections, nodes whose clocks
 * disagree, client-chosen scopes of any length, and a database that stops answering.
 */
class PostgresStoreHardeningTest {

  static final Duration TTL = Duration.ofHours(24);
  static final Duration LEASE = Duration.ofSeconds(30);

  static Fingerprint fingerprint(String request) throws Exception {
    return new Fingerprint(
        MessageDigest.getInstance("SHA-256").digest(request.getBytes(StandardCharsets.UTF_8)));
  }

  static IdempotencyKey key() {
    return new IdempotencyKey("scope", UUID.randomUUID().toString());
  }

  static StoredResponse response(String body) {
    return new StoredResponse(201, List.of(), body.getBytes(StandardCharsets.UTF_8), true);
  }

  static HikariDataSource pool(boolean autoCommit, String isolation) {
    HikariConfig config = new HikariConfig();
    config.setJdbcUrl(TestDatabase.jdbcUrl());
    config.setUsername(TestDatabase.user());
    config.setPassword(TestDatabase.password());
    config.setMaximumPoolSize(20);
    config.setAutoCommit(autoCommit);
    if (isolation != null) {
      config.setTransactionIsolation(isolation);
    }
    return new HikariDataSource(config);
  }

  static IdempotencyStore storeOn(HikariDataSource pool, TableName table) {
    return StoreBuilder.postgres(pool).tableName(table).migrate(false).cacheMaxBytes(0)
        .purgeInterval(Duration.ZERO).build();
  }

  static long tokenOf(ClaimResult claim) {
    return ((ClaimResult.Acquired) claim).token();
  }

  @Test
  void claim_autoCommitFalsePool_claimAndCompletionAreCommitted() throws Exception {
    TableName table = TestDatabase.freshTable();
    try (HikariDataSource pool = pool(false, null); IdempotencyStore store = storeOn(pool, table)) {
      IdempotencyKey key = key();
      long token = tokenOf(store.claim(key, fingerprint("x")));

      assertThat(store.complete(key, token, response("paid"))).isTrue();

      assertThat(store.claim(key, fingerprint("x"))).isInstanceOf(ClaimResult.Completed.class);
      assertThat(count("SELECT count(*) FROM " + table.qualifiedTable())).isEqualTo(1);
    }
  }

  @Test
  void claim_repeatableReadPoolAndConcurrentDuplicates_oneWinnerAndNoStoreFailure()
      throws Exception {
    TableName table = TestDatabase.freshTable();
    try (HikariDataSource pool = pool(true, "TRANSACTION_REPEATABLE_READ");
        IdempotencyStore store = storeOn(pool, table)) {
      ExecutorService threads = Executors.newFixedThreadPool(16);
      try {
        for (int round = 0; round < 10; round++) {
          IdempotencyKey key = key();
          CyclicBarrier start = new CyclicBarrier(16);
          List<Future<ClaimResult>> claims = new ArrayList<>();
          for (int i = 0; i < 16; i++) {
            claims.add(threads.submit(() -> {
              start.await();
              return store.claim(key, fingerprint("x"));
            }));
          }
          int winners = 0;
          for (Future<ClaimResult> claim : claims) {
            ClaimResult result = claim.get(); // a StoreUnavailableException would fail here
            if (result instanceof ClaimResult.Acquired) {
              winners++;
            } else {
              assertThat(result).isInstanceOf(ClaimResult.InProgress.class);
            }
          }
          assertThat(winners).as("winners in round %d", round).isEqualTo(1);
        }
      } finally {
        threads.shutdownNow();
      }
    }
  }

  /**
   * Regression: at REPEATABLE READ a renewal that landed after the request's transaction took its
   * snapshot made the completion fail with a serialization failure, answered 503 on every retry.
   * The open transaction now holds the key's row, and the renewal leaves it to it.
   */
  @Test
  void commit_repeatableReadPoolAndRenewalDuringTheHandler_commits() throws Exception {
    TableName table = TestDatabase.freshTable();
    try (HikariDataSource pool = pool(true, "TRANSACTION_REPEATABLE_READ");
        IdempotencyStore store = storeOn(pool, table)) {
      IdempotencyKey key = key();
      long token = tokenOf(store.claim(key, fingerprint("x")));
      try (StoreTransaction transaction = store.beginTransaction(key, token)) {
        try (Statement handler = transaction.connection().createStatement()) {
          handler.executeQuery("SELECT 1").close(); // the handler's first statement: the snapshot
        }
        assertThat(store.renew(key, token)).isTrue(); // a renewal from another connection

        assertThat(transaction.commit(response("paid"))).isTrue();
      }
      assertThat(store.claim(key, fingerprint("x"))).isInstanceOf(ClaimResult.Completed.class);
    }
  }

  @Test
  void claim_nodeWhoseClockIsAhead_doesNotTakeOverARenewedLease() throws Exception {
    TableName table = TestDatabase.freshTable();
    MutableClock a = MutableClock.atEpochDay();
    MutableClock b = new MutableClock(a.instant().plusSeconds(25));
    PostgresStore nodeA =
        new PostgresStore(TestDatabase.dataSource(), table, a, TTL, LEASE, 100, null);
    PostgresStore nodeB =
        new PostgresStore(TestDatabase.dataSource(), table, b, TTL, LEASE, 100, null);
    IdempotencyKey key = key();
    long token = tokenOf(nodeA.claim(key, fingerprint("x")));
    a.advance(Duration.ofSeconds(10));
    b.advance(Duration.ofSeconds(10));
    assertThat(nodeA.renew(key, token)).isTrue();
    a.advance(Duration.ofSeconds(6));
    b.advance(Duration.ofSeconds(6));

    assertThat(nodeB.claim(key, fingerprint("x"))).isInstanceOf(ClaimResult.InProgress.class);
    assertThat(nodeA.complete(key, token, response("a"))).isTrue();
  }

  @Test
  void claim_cacheOnNodeWhoseClockIsBehind_doesNotOutliveTheRecord() throws Exception {
    TableName table = TestDatabase.freshTable();
    MutableClock b = MutableClock.atEpochDay();
    MutableClock a = new MutableClock(b.instant().minusSeconds(60));
    Duration ttl = Duration.ofMinutes(10);
    IdempotencyStore nodeA = new CachingStore(
        new PostgresStore(TestDatabase.dataSource(), table, a, ttl, LEASE, 100, null), 1 << 20, ttl,
        LEASE, a);
    IdempotencyStore nodeB = new CachingStore(
        new PostgresStore(TestDatabase.dataSource(), table, b, ttl, LEASE, 100, null), 1 << 20, ttl,
        LEASE, b);
    IdempotencyKey key = key();
    long first = tokenOf(nodeB.claim(key, fingerprint("x")));
    nodeB.complete(key, first, response("first"));
    assertThat(nodeA.claim(key, fingerprint("x"))).isInstanceOf(ClaimResult.Completed.class);
    a.advance(ttl.plusSeconds(1));
    b.advance(ttl.plusSeconds(1));
    long second = tokenOf(nodeB.claim(key, fingerprint("y")));
    nodeB.complete(key, second, response("second"));

    ClaimResult onA = nodeA.claim(key, fingerprint("y"));

    assertThat(onA).isInstanceOf(ClaimResult.Completed.class);
    assertThat(((ClaimResult.Completed) onA).response()).isEqualTo(response("second"));
  }

  @Test
  void claim_duplicateOfLiveKey_writesNothing() throws Exception {
    TableName table = TestDatabase.freshTable();
    PostgresStore store =
        new PostgresStore(TestDatabase.dataSource(), table, null, TTL, LEASE, 100, null);
    IdempotencyKey completed = key();
    store.complete(completed, tokenOf(store.claim(completed, fingerprint("x"))), response("paid"));
    IdempotencyKey running = key();
    store.claim(running, fingerprint("x"));
    String before = footprint(table);

    for (int i = 0; i < 50; i++) {
      assertThat(store.claim(completed, fingerprint("x")))
          .isInstanceOf(ClaimResult.Completed.class);
      assertThat(store.claim(running, fingerprint("x")))
          .isInstanceOf(ClaimResult.InProgress.class);
      assertThat(store.claim(running, fingerprint("other")))
          .isInstanceOf(ClaimResult.FingerprintMismatch.class);
    }

    // No sequence value, no row version or lock, no transaction id: nothing written.
    assertThat(footprint(table)).isEqualTo(before);
  }

  /** The token sequence, each row's version and lock, and the next transaction id. */
  private static String footprint(TableName table) throws SQLException {
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement()) {
      StringBuilder footprint = new StringBuilder();
      try (ResultSet rows = statement.executeQuery(
          "SELECT (SELECT last_value FROM " + table.qualifiedTokenSequence() + ")::text, "
              + " (SELECT string_agg(xmin::text || '/' || xmax::text || '/' || ctid::text, ',')"
              + "  FROM " + table.qualifiedTable() + "), txid_current_if_assigned()::text,"
              + " (SELECT txid_snapshot_xmax(txid_current_snapshot()))::text")) {
        rows.next();
        footprint.append(rows.getString(1)).append(' ').append(rows.getString(2)).append(' ')
            .append(rows.getString(4));
      }
      return footprint.toString();
    }
  }

  @Test
  void claim_scopeOfTenKilobytes_claimsCompletesAndReplays() throws Exception {
    TableName table = TestDatabase.freshTable();
    PostgresStore store =
        new PostgresStore(TestDatabase.dataSource(), table, null, TTL, LEASE, 100, null);
    IdempotencyKey longScope = new IdempotencyKey("principal:" + "é".repeat(10_000), "k");
    IdempotencyKey otherLongScope = new IdempotencyKey("principal:" + "é".repeat(9_999) + "e", "k");

    long token = tokenOf(store.claim(longScope, fingerprint("x")));
    assertThat(store.complete(longScope, token, response("paid"))).isTrue();

    assertThat(store.claim(longScope, fingerprint("x"))).isInstanceOf(ClaimResult.Completed.class);
    assertThat(store.claim(otherLongScope, fingerprint("x")))
        .isInstanceOf(ClaimResult.Acquired.class);
  }

  /**
   * Regression (issue 27): the purger's election was a session advisory lock and its unlock, which
   * a transaction pooler may run on two different server connections (leaving the lock held on
   * one of them for good). The lock is now each batch's transaction's: nothing is left on the
   * connection once the purge returns, and a second node purges next.
   */
  @Test
  void purgeExpired_electionIsTheBatchTransactions_noLockOutlivesTheCall() throws Exception {
    TableName table = TestDatabase.freshTable();
    MutableClock clock = MutableClock.atEpochDay();
    try (HikariDataSource pool = pool(true, null)) {
      pool.setMaximumPoolSize(1);
      PostgresStore first = new PostgresStore(pool, table, clock, TTL, LEASE, 100, null);
      PostgresStore second =
          new PostgresStore(TestDatabase.dataSource(), table, clock, TTL, LEASE, 100, null);
      first.claim(key(), fingerprint("x"));
      clock.advance(TTL); // a lapsed in-progress row is purged a ttl after its creation
      assertThat(first.purgeExpired()).isEqualTo(1);

      try (Connection same = pool.getConnection();
          Statement statement = same.createStatement();
          ResultSet locks = statement.executeQuery("SELECT count(*) FROM pg_locks"
              + " WHERE locktype = 'advisory' AND pid = pg_backend_pid()")) {
        locks.next();
        assertThat(locks.getLong(1)).as("advisory locks left on the purger's connection").isZero();
      }
      second.claim(key(), fingerprint("x"));
      clock.advance(TTL);
      assertThat(second.purgeExpired()).isEqualTo(1);
    }
  }

  @Test
  void claim_deferredFlush_claimsAndLeavesThePoolsConnectionsAsTheyWere() throws Exception {
    TableName table = TestDatabase.freshTable();
    for (boolean autoCommit : new boolean[] {true, false}) {
      try (HikariDataSource pool = pool(autoCommit, null)) {
        pool.setMaximumPoolSize(1); // every call on the same connection: it must come back clean
        try (Connection connection = pool.getConnection();
            Statement statement = connection.createStatement()) {
          // The session's own setting (the embedded test server's default is off).
          statement.execute("SET synchronous_commit TO on");
          if (!autoCommit) {
            connection.commit();
          }
        }
        PostgresStore store = new PostgresStore(pool, table, null, TTL, LEASE,
            Duration.ofSeconds(5), 100, false, true, false, null, true, null);
        IdempotencyKey key = key();

        long token = tokenOf(store.claim(key, fingerprint("x")));

        PostgresStore other =
            new PostgresStore(TestDatabase.dataSource(), table, null, TTL, LEASE, 100, null);
        assertThat(other.claim(key, fingerprint("x"))).isInstanceOf(ClaimResult.InProgress.class);
        assertThat(store.complete(key, token, response("paid"))).isTrue();
        try (Connection connection = pool.getConnection();
            Statement statement = connection.createStatement();
            ResultSet setting = statement.executeQuery("SHOW synchronous_commit")) {
          setting.next();
          assertThat(setting.getString(1)).isEqualTo("on");
          assertThat(connection.getAutoCommit()).isEqualTo(autoCommit);
          if (!autoCommit) {
            connection.rollback();
          }
        }
      }
    }
  }

  @Test
  void claim_frozenDatabase_everyCallerFailsWithinAboutTheStatementBound() throws Exception {
    EmbeddedPostgres postgres = TestDatabase.startEmbedded();
    try (IdempotencyStore store =
        StoreBuilder.postgres(postgres.getJdbcUrl("postgres", "postgres"), "postgres", "postgres")
            .cacheMaxBytes(0).purgeInterval(Duration.ZERO).build()) {
      store.claim(new IdempotencyKey("s", "warm"), fingerprint("x"));
      // 200 callers at once, half of them duplicates of one key (a hot key's retries).
      int callers = 200;
      ExecutorService threads = Executors.newFixedThreadPool(callers);
      CyclicBarrier start = new CyclicBarrier(callers);
      List<Future<Long>> millisToFail = new ArrayList<>();
      List<Long> pids = freeze(postgres.getPort());
      try {
        for (int i = 0; i < callers; i++) {
          IdempotencyKey key = i % 2 == 0 ? new IdempotencyKey("s", "hot") : key();
          millisToFail.add(threads.submit(() -> {
            start.await();
            long started = System.nanoTime();
            assertThatThrownBy(() -> store.claim(key, fingerprint("x")))
                .isInstanceOf(StoreUnavailableException.class);
            return (System.nanoTime() - started) / 1_000_000;
          }));
        }
        long slowest = 0;
        for (Future<Long> millis : millisToFail) {
          slowest = Math.max(slowest, millis.get(60, TimeUnit.SECONDS));
        }
        // Not a speed assertion: callers queued behind each other would take one bound each
        // (minutes for 200); every caller failing within a few bounds proves none waits for
        // another's.
        assertThat(Duration.ofMillis(slowest)).isLessThan(Duration.ofSeconds(10));
      } finally {
        signal(pids, "CONT");
        threads.shutdownNow();
      }
      // And the store recovers by itself once the database answers again (known down until a
      // probe, at most one per bound, finds it back).
      assertThat(claimOnceBack(store, key())).isInstanceOf(ClaimResult.Acquired.class);
    } finally {
      postgres.close();
    }
  }

  /** Claims {@code key}, again while the store answers it is unavailable, for up to 30 s. */
  static ClaimResult claimOnceBack(IdempotencyStore store, IdempotencyKey key) throws Exception {
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    while (true) {
      try {
        return store.claim(key, fingerprint("x"));
      } catch (StoreUnavailableException e) {
        if (System.nanoTime() > deadline) {
          throw e;
        }
        Thread.sleep(50);
      }
    }
  }

  /**
   * Freezes the PostgreSQL this test started (pg_ctl detaches it, so it is found by its port,
   * which no other live server holds): the postmaster first, so that it forks no backend after
   * its children are listed, then its children. Returns every process stopped.
   */
  private static List<Long> freeze(int port) throws Exception {
    ProcessHandle postmaster = ProcessHandle.allProcesses()
        .filter(p -> p.info().commandLine().orElse("").contains("-p " + port + " "))
        .findFirst().orElseThrow();
    List<Long> pids = new ArrayList<>(List.of(postmaster.pid()));
    signal(pids, "STOP");
    List<Long> children = new ArrayList<>();
    postmaster.descendants().forEach(p -> children.add(p.pid()));
    signal(children, "STOP");
    pids.addAll(children);
    return pids;
  }

  /** Sends {@code signal} to processes this test run started (PostgreSQL's, by pid). */
  static void signal(List<Long> pids, String signal) throws Exception {
    List<String> command = new ArrayList<>(List.of("kill", "-" + signal));
    pids.forEach(pid -> command.add(Long.toString(pid)));
    assertThat(new ProcessBuilder(command).inheritIO().start().waitFor()).isZero();
  }

  private static long count(String sql) throws SQLException {
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement();
        ResultSet row = statement.executeQuery(sql)) {
      row.next();
      return row.getLong(1);
    }
  }
}
