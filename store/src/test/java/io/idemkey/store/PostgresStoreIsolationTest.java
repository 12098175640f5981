package io.idemkey.store;

import static io.idemkey.store.PostgresStoreHardeningTest.fingerprint;
import static io.idemkey.store.PostgresStoreHardeningTest.key;
import static io.idemkey.store.PostgresStoreHardeningTest.response;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.migrations.TableName;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * One call's data or one caller's load is its own: what a request carries cannot fail another
 * request's claim or completion, requests holding every connection cannot starve a lease, and a
 * commit that is only slow is not reported as failed.
 */
class PostgresStoreIsolationTest {

  private TableName table;
  private IdempotencyStore store;

  @BeforeEach
  void setUp() {
    table = TestDatabase.freshTable();
    store = StoreBuilder.postgres(TestDatabase.dataSource()).tableName(table).migrate(false)
        .cacheMaxBytes(0).purgeInterval(Duration.ZERO).build();
  }

  @AfterEach
  void tearDown() {
    store.close();
  }

  /** What a request may carry that a database may refuse, beside what any request carries. */
  private record Request(IdempotencyKey key, StoredResponse response, boolean poisoned) {}

  private static Request randomRequest(Random random, int i) {
    String id = "k" + i + "-" + UUID.randomUUID();
    StoredResponse plain = response("body of " + id);
    return switch (random.nextInt(8)) {
      case 0 -> new Request(new IdempotencyKey("principal:ev\u0000e", id), plain, true);
      case 1 -> new Request(new IdempotencyKey("principal:\ud800lone", id), plain, true);
      case 2 -> new Request(new IdempotencyKey("principal:" + "x".repeat(5_000), id), plain, true);
      case 3 -> new Request(new IdempotencyKey("principal:alice", id),
          new StoredResponse(201, List.of(new ResponseHeader("X-Big", "v".repeat(70 * 1024))),
              ("body of " + id).getBytes(StandardCharsets.UTF_8), true), true);
      default -> new Request(new IdempotencyKey("principal:alice", id), plain, false);
    };
  }

  @Test
  void claimAndComplete_randomBadDataAmongConcurrentRequests_everyRequestAnsweredAsIfAlone()
      throws Exception {
    Random random = new Random(42);
    int threads = 16;
    int perThread = 25;
    List<List<Request>> work = new ArrayList<>();
    for (int t = 0; t < threads; t++) {
      List<Request> mine = new ArrayList<>();
      for (int i = 0; i < perThread; i++) {
        mine.add(randomRequest(random, t * perThread + i));
      }
      work.add(mine);
    }
    CyclicBarrier start = new CyclicBarrier(threads);
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      List<Future<List<String>>> results = new ArrayList<>();
      for (List<Request> mine : work) {
        results.add(pool.submit(() -> {
          start.await();
          List<String> wrong = new ArrayList<>();
          for (Request request : mine) {
            ClaimResult claim = store.claim(request.key(), fingerprint("a"));
            if (!(claim instanceof ClaimResult.Acquired acquired)) {
              wrong.add(request + " claimed: " + claim);
              continue;
            }
            if (!store.complete(request.key(), acquired.token(), request.response())) {
              wrong.add(request.key().key() + " not completed");
            }
          }
          return wrong;
        }));
      }
      for (Future<List<String>> result : results) {
        assertThat(result.get(120, TimeUnit.SECONDS)).isEmpty();
      }
    } finally {
      pool.shutdownNow();
    }
    int poisoned = 0;
    for (List<Request> mine : work) {
      for (Request request : mine) {
        poisoned += request.poisoned() ? 1 : 0;
        ClaimResult replay = store.claim(request.key(), fingerprint("a"));
        assertThat(replay).isInstanceOf(ClaimResult.Completed.class);
        StoredResponse stored = ((ClaimResult.Completed) replay).response();
        assertThat(stored.body()).isEqualTo(request.response().body());
        assertThat(stored.headers()).isEqualTo(request.response().headers());
      }
    }
    assertThat(poisoned).as("the mix held bad data").isGreaterThan(threads * perThread / 4);
  }

  @Test
  void claim_scopesThatDifferOnlyInWhatPostgresCannotStore_areDifferentScopes() throws Exception {
    String key = UUID.randomUUID().toString();
    for (String scope : List.of("principal:eve", "principal:ev\u0000e", "principal:ev?e",
        "principal:ev\ud800e", "principal:ev\udc00e")) {
      assertThat(store.claim(new IdempotencyKey(scope, key), fingerprint("a")))
          .as(scope).isInstanceOf(ClaimResult.Acquired.class);
    }
  }

  @Test
  void upkeep_everyPooledConnectionHeldByRequestTransactions_renewsAndReleasesAndClaimsFailFast() throws Exception {
    try (HikariDataSource pool = TestDatabase.newPool(3); // waits 30 s for a connection
        IdempotencyStore small = StoreBuilder.postgres(pool).tableName(table).migrate(false)
            .cacheMaxBytes(0).purgeInterval(Duration.ZERO).connectTimeout(Duration.ofSeconds(1))
            .build()) {
      IdempotencyKey renewed = key();
      long token = ((ClaimResult.Acquired) small.claim(renewed, fingerprint("a"))).token();
      assertThat(small.renew(renewed, token)).isTrue(); // its connection is now its own
      List<StoreTransaction> transactions = new ArrayList<>();
      try {
        for (int i = 0; i < 3; i++) { // every connection of the pool: three requests' transactions
          IdempotencyKey held = key();
          long heldToken = ((ClaimResult.Acquired) small.claim(held, fingerprint("a"))).token();
          StoreTransaction transaction = small.beginTransaction(held, heldToken);
          transaction.connection(); // begun: its connection is taken
          transactions.add(transaction);
        }
        long started = System.nanoTime();
        assertThatThrownBy(() -> small.claim(key(), fingerprint("a")))
            .as("the pool is exhausted").isInstanceOf(StoreUnavailableException.class);
        // Not a speed assertion: it proves the pool's own 30 s wait is not in play.
        assertThat(Duration.ofNanos(System.nanoTime() - started))
            .isLessThan(Duration.ofSeconds(15));

        assertThat(small.renew(renewed, token)).isTrue();
        // A request that gives its key up (it could not get a transaction) releases it all the
        // same, so that the client's retry is not refused until the lease runs out.
        assertThat(small.release(renewed, token)).isTrue();
      } finally {
        transactions.forEach(StoreTransaction::close);
      }
    }
  }

  @Test
  void commit_slowerThanTheStatementBound_isCommittedAndReportedSo() throws Exception {
    String slow = slowCommitTable("pg_sleep(2.5)");
    try (IdempotencyStore bounded = StoreBuilder.postgres(TestDatabase.dataSource())
        .tableName(table).migrate(false).cacheMaxBytes(0).purgeInterval(Duration.ZERO)
        .connectTimeout(Duration.ofSeconds(1)).build()) {
      IdempotencyKey key = key();
      long token = ((ClaimResult.Acquired) bounded.claim(key, fingerprint("a"))).token();
      try (StoreTransaction transaction = bounded.beginTransaction(key, token)) {
        transaction.connection().createStatement().execute("INSERT INTO " + slow + " VALUES (1)");

        assertThat(transaction.commit(response("paid"))).isTrue();
      }
      assertThat(count("SELECT count(*) FROM " + slow)).isEqualTo(1);
      assertThat(bounded.claim(key, fingerprint("a"))).isInstanceOf(ClaimResult.Completed.class);
    }
  }

  /**
   * Regression: a commit refused for what the transaction did (here a deferred trigger that
   * fails) was answered as the store being away, 503 on every retry. It is the request's own
   * failure: nothing is committed, and the key is released for a retry.
   */
  @Test
  void commit_failingAtCommit_isTheTransactionsOwnFailure() throws Exception {
    String failing = slowCommitTable("1 / 0");
    IdempotencyKey key = key();
    long token = ((ClaimResult.Acquired) store.claim(key, fingerprint("a"))).token();
    try (StoreTransaction transaction = store.beginTransaction(key, token)) {
      transaction.connection().createStatement().execute("INSERT INTO " + failing + " VALUES (1)");

      assertThatThrownBy(() -> transaction.commit(response("paid")))
          .isInstanceOf(TransactionAbortedException.class);
      assertThat(transaction.release()).isTrue(); // what the filter does then
    }
    assertThat(count("SELECT count(*) FROM " + failing)).isZero();
    assertThat(store.claim(key, fingerprint("a"))).isInstanceOf(ClaimResult.Acquired.class);
  }

  /** Regression: a deferred unique constraint failing at commit was a 503 for ever. */
  @Test
  void commit_deferredUniqueConstraintFails_isTheTransactionsOwnFailure() throws Exception {
    String unique = "uniq_" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement()) {
      statement.execute("CREATE TABLE " + unique
          + " (id int, CONSTRAINT " + unique + "_id UNIQUE (id) DEFERRABLE INITIALLY DEFERRED)");
    }
    IdempotencyKey key = key();
    long token = ((ClaimResult.Acquired) store.claim(key, fingerprint("a"))).token();
    try (StoreTransaction transaction = store.beginTransaction(key, token)) {
      transaction.connection().createStatement()
          .execute("INSERT INTO " + unique + " VALUES (1), (1)"); // checked at commit

      assertThatThrownBy(() -> transaction.commit(response("paid")))
          .isInstanceOf(TransactionAbortedException.class)
          .hasMessageContaining("duplicate key");
      transaction.release();
    }
    assertThat(count("SELECT count(*) FROM " + unique)).isZero();
    assertThat(store.claim(key, fingerprint("a"))).isInstanceOf(ClaimResult.Acquired.class);
  }

  /**
   * Regression: a renewal that met its own request's completion on the key's row waited for it,
   * ran into the statement bound, and (then) cost the node its kept connection. It now skips a
   * locked row and finds it held, at once: here the lock is held until after the renewal
   * returns, so a renewal that waited would fail with the bound instead.
   */
  @Test
  void renew_rowLockedByItsRequestsCompletion_answersHeldWithoutWaiting() throws Exception {
    IdempotencyKey key = key();
    long token = ((ClaimResult.Acquired) store.claim(key, fingerprint("a"))).token();
    try (Connection completion = TestDatabase.dataSource().getConnection()) {
      completion.setAutoCommit(false);
      try (PreparedStatement lock = completion.prepareStatement(
          "SELECT 1 FROM " + table.qualifiedTable() + " WHERE idem_key = ? FOR UPDATE")) {
        lock.setString(1, key.key());
        lock.executeQuery().close();
      }
      assertThat(store.renew(key, token)).isTrue();
      completion.rollback();
    }
    assertThat(store.renew(key, token + 1)).as("another token").isFalse();
  }

  /**
   * A table whose rows run {@code expression} when their transaction commits (a deferred
   * constraint trigger): a slow disk or a synchronous standby, or a commit that fails.
   */
  static String slowCommitTable(String expression) throws SQLException {
    String name = "commits_" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement()) {
      statement.execute("CREATE TABLE " + name + " (id int)");
      statement.execute("CREATE FUNCTION " + name + "_at_commit() RETURNS trigger"
          + " LANGUAGE plpgsql AS $$ BEGIN PERFORM " + expression + "; RETURN NULL; END $$");
      statement.execute("CREATE CONSTRAINT TRIGGER " + name + "_at_commit AFTER INSERT ON " + name
          + " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION " + name
          + "_at_commit()");
    }
    return name;
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
