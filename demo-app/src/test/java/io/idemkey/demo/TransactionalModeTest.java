package io.idemkey.demo;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The gap between the handler's writes and the commit, in transactional mode (SPEC §6), made
 * deterministic: demo nodes as processes on a PostgreSQL the test owns, which holds locks and
 * changes rows of its own to stop a request exactly where it wants.
 */
class TransactionalModeTest {

  static final Pattern ID = Pattern.compile("\"id\":(\\d+)");

  @TempDir Path dir;
  DemoNodes cluster;
  final HttpClient client =
      HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

  @BeforeEach
  void startDatabase() throws Exception {
    cluster = new DemoNodes(dir, "-Didempotency.lease=2s",
        "-Didempotency.jdbc.connect-timeout=500ms");
  }

  @AfterEach
  void stopAll() throws Exception {
    cluster.close();
  }

  HttpResponse<String> post(int port, String query, String key, long amount) throws Exception {
    return client.send(
        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/payments" + query))
            .timeout(Duration.ofSeconds(30))
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(
                "{\"amount\": " + amount + ", \"currency\": \"EUR\"}"))
            .build(),
        HttpResponse.BodyHandlers.ofString());
  }

  /** Retries the same request while it is answered 409 (the lease has to run out first). */
  HttpResponse<String> retryWhileInProgress(int port, String query, String key, long amount)
      throws Exception {
    HttpResponse<String> response = post(port, query, key, amount);
    for (int i = 0; i < 100 && response.statusCode() == 409; i++) {
      Thread.sleep(100);
      response = post(port, query, key, amount);
    }
    return response;
  }


  long paymentsOf(long amount) throws SQLException {
    return cluster.scalar("SELECT count(*) FROM payments WHERE amount = ?", amount);
  }

  /** Payment ids handed out so far: nextval is not transactional, so a rolled-back insert shows. */
  long paymentIdsUsed() throws SQLException {
    return cluster.scalar("SELECT coalesce(pg_sequence_last_value('payments_id_seq'), 0)");
  }

  long keyRows(String key) throws SQLException {
    return cluster.scalar("SELECT count(*) FROM idempotency_keys WHERE idem_key = ?", key);
  }

  void awaitKeyInProgress(String key) throws Exception {
    for (int i = 0; i < 200; i++) {
      // The charge step (SPEC §12) comes first and locks the key's row to store its result:
      // the test touches the row only once that is stored.
      if (cluster.scalar("SELECT count(*) FROM idempotency_keys k WHERE idem_key = ? AND state ="
          + " 'IN_PROGRESS' AND EXISTS (SELECT 1 FROM idempotency_keys_steps s"
          + " WHERE s.idem_key = k.idem_key AND s.name = 'charge')", key) == 1) {
        return;
      }
      Thread.sleep(25);
    }
    throw new AssertionError("key " + key + " was never claimed");
  }

  static long idOf(HttpResponse<String> response) {
    Matcher id = ID.matcher(response.body());
    assertThat(id.find()).as("an id in %s", response.body()).isTrue();
    return Long.parseLong(id.group(1));
  }

  @Test
  void nodeKilledAfterInsertBeforeCommit_noPayment_retryAfterLeasePaysOnce() throws Exception {
    int doomedPort = DemoNodes.freePort();
    int otherPort = DemoNodes.freePort();
    cluster.start(doomedPort);
    cluster.start(otherPort);
    String key = UUID.randomUUID().toString();
    long amount = 7001;

    CompletableFuture<HttpResponse<String>> first = CompletableFuture.supplyAsync(() -> {
      try {
        return post(doomedPort, "?delayMs=1000", key, amount);
      } catch (Exception e) {
        return null;
      }
    });
    long blockedPid;
    try (Connection locker = cluster.connect()) {
      awaitKeyInProgress(key);
      // Hold the key's row: the handler inserts its payment, then its completion UPDATE waits.
      locker.setAutoCommit(false);
      try (PreparedStatement lock = locker.prepareStatement(
          "SELECT token FROM idempotency_keys WHERE idem_key = ? FOR UPDATE")) {
        lock.setString(1, key);
        lock.executeQuery().close();
      }
      blockedPid = awaitCompletionBlockedAfterInsert(locker);

      cluster.kill(doomedPort);
      assertThat(first.get(10, TimeUnit.SECONDS)).as("the client's connection broke").isNull();
      locker.rollback();
    }
    // Its session ends when the backend finds the client gone, rolling its transaction back.
    for (int i = 0; i < 100
        && cluster.scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = ?", blockedPid) > 0; i++) {
      Thread.sleep(50);
    }
    assertThat(cluster.scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = ?", blockedPid))
        .as("the killed node's session ended").isZero();
    assertThat(paymentsOf(amount)).as("the uncommitted payment").isZero();

    HttpResponse<String> retried = retryWhileInProgress(otherPort, "?delayMs=1000", key, amount);
    assertThat(retried.statusCode()).isEqualTo(201);
    assertThat(paymentsOf(amount)).isEqualTo(1);
    assertThat(cluster.scalar("SELECT amount FROM payments WHERE id = ?", idOf(retried)))
        .isEqualTo(amount);
  }

  /**
   * Waits until a node's completion statement waits for the test's row lock, in a transaction
   * that has already written to the payments table; returns that backend's pid.
   */
  long awaitCompletionBlockedAfterInsert(Connection locker) throws Exception {
    String blocked =
        "SELECT a.pid FROM pg_stat_activity a"
            + " WHERE a.wait_event_type = 'Lock'"
            + " AND a.query LIKE 'UPDATE % SET state = ''COMPLETED''%'" // the completion
            + " AND a.backend_xid IS NOT NULL"
            + " AND EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            + "   WHERE l.pid = a.pid AND c.relname = 'payments' AND l.mode = 'RowExclusiveLock'"
            + "   AND l.granted)";
    try (Connection observer = cluster.connect();
        Statement statement = observer.createStatement()) {
      for (int i = 0; i < 200; i++) {
        try (ResultSet row = statement.executeQuery(blocked)) {
          if (row.next()) {
            return row.getLong(1);
          }
        }
        Thread.sleep(25);
      }
    }
    throw new AssertionError("no completion ever waited after an insert");
  }

  @Test
  void tokenTakenWhileHandlerRuns_paymentRolledBack_clientGets409NotA201() throws Exception {
    int port = DemoNodes.freePort();
    cluster.start(port);
    String key = UUID.randomUUID().toString();
    long amount = 7002;
    long idsBefore = paymentIdsUsed();

    CompletableFuture<HttpResponse<String>> first = CompletableFuture.supplyAsync(() -> {
      try {
        return post(port, "?delayMs=1000", key, amount);
      } catch (Exception e) {
        throw new IllegalStateException(e);
      }
    });
    awaitKeyInProgress(key);
    // What a take-over by another node does to the row: a new fencing token (SPEC §5).
    assertThat(cluster.scalar("WITH u AS (UPDATE idempotency_keys SET token = token + 1000"
        + " WHERE idem_key = ? RETURNING 1) SELECT count(*) FROM u", key)).isEqualTo(1);

    HttpResponse<String> answer = first.get(20, TimeUnit.SECONDS);
    assertThat(answer.statusCode()).as("answer: %s", answer.body()).isEqualTo(409);
    assertThat(answer.body()).contains("urn:idemkey:problem:in-progress");
    assertThat(paymentIdsUsed()).as("the handler inserted").isGreaterThan(idsBefore);
    assertThat(paymentsOf(amount)).as("its insert was rolled back").isZero();

    // Nobody renews the new token's lease; once it runs out, a retry pays once.
    HttpResponse<String> retried = retryWhileInProgress(port, "?delayMs=1000", key, amount);
    assertThat(retried.statusCode()).as("retry: %s", retried.body()).isEqualTo(201);
    assertThat(paymentsOf(amount)).isEqualTo(1);
    assertThat(cluster.scalar("SELECT amount FROM payments WHERE id = ?", idOf(retried)))
        .isEqualTo(amount);
  }

  /**
   * Regression (issue 22): a commit refused for what the transaction did was answered 503
   * store-unavailable, on every retry; it is the handler's failure: 500 transaction-aborted, the
   * key released, and the retry runs.
   */
  @Test
  void commitRefusedAfterInsert_500TransactionAborted_paymentRolledBackAndKeyReleased()
      throws Exception {
    int port = DemoNodes.freePort();
    cluster.start(port);
    long amount = 7003;
    try (Connection connection = cluster.connect();
        Statement statement = connection.createStatement()) {
      // Checked at commit, after the insert and the completion: the commit itself fails.
      statement.execute("CREATE FUNCTION refuse_7003() RETURNS trigger LANGUAGE plpgsql AS $$"
          + " BEGIN IF NEW.amount = 7003 THEN RAISE EXCEPTION 'refused at commit'; END IF;"
          + " RETURN NULL; END $$");
      statement.execute("CREATE CONSTRAINT TRIGGER refuse_7003 AFTER INSERT ON payments"
          + " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_7003()");
    }
    String key = UUID.randomUUID().toString();
    long idsBefore = paymentIdsUsed();

    HttpResponse<String> refused = post(port, "", key, amount);

    assertThat(refused.statusCode()).isEqualTo(500);
    assertThat(refused.body()).contains("urn:idemkey:problem:transaction-aborted");
    assertThat(paymentIdsUsed()).as("the handler inserted").isGreaterThan(idsBefore);
    assertThat(paymentsOf(amount)).as("its insert was rolled back").isZero();
    assertThat(keyRows(key)).as("the key was released, nothing stored").isZero();

    try (Connection connection = cluster.connect();
        Statement statement = connection.createStatement()) {
      statement.execute("DROP TRIGGER refuse_7003 ON payments");
    }
    HttpResponse<String> retried = post(port, "", key, amount);
    assertThat(retried.statusCode()).isEqualTo(201);
    assertThat(paymentsOf(amount)).isEqualTo(1);
  }

  @Test
  void failTrue_500_nothingInsertedNothingStored_retryRunsAgain() throws Exception {
    int port = DemoNodes.freePort();
    cluster.start(port);
    String key = UUID.randomUUID().toString();
    long amount = 7004;

    HttpResponse<String> failed = post(port, "?fail=true", key, amount);
    HttpResponse<String> again = post(port, "?fail=true", key, amount);

    assertThat(failed.statusCode()).isEqualTo(500);
    assertThat(again.statusCode()).isEqualTo(500);
    assertThat(again.headers().firstValue("Idempotent-Replayed")).isEmpty();
    assertThat(keyRows(key)).as("a release status stores nothing").isZero();
    assertThat(paymentsOf(amount)).isZero();
  }
}
