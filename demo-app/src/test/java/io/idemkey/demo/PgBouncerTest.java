package io.idemkey.demo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 27: two demo nodes as processes, each reaching PostgreSQL through one PgBouncer in
 * transaction pooling (Debian's package, started by {@link PgBouncer}), pass the checks they pass
 * on a direct connection: start, payments and replays, a duplicate waiting on the other node
 * woken when the first answers, the purge of expired keys, and a node killed mid-request.
 *
 * <p>Each node's pool goes through PgBouncer ({@code prepareThreshold=0}); its listener for
 * waiters, the one session a node keeps that cannot share a server connection, goes to PostgreSQL
 * directly ({@code idempotency.jdbc.listen-url}). Skipped, saying why, when pgbouncer is not
 * installed. One PostgreSQL, PgBouncer and pair of nodes serve every test, in order; the last
 * kills node A. Each payment has an amount of its own, which is how its rows are counted.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class PgBouncerTest {

  @TempDir static Path dir;

  static DemoNodes database;
  static PgBouncer bouncer;
  static DemoNodes nodes;
  static int nodeA;
  static int nodeB;
  static final AtomicLong amounts = new AtomicLong(27_000);

  final HttpClient client =
      HttpClient.newBuilder()
          .version(HttpClient.Version.HTTP_1_1)
          .connectTimeout(Duration.ofSeconds(5))
          .build();

  @BeforeAll
  static void startDatabaseBouncerAndNodes() throws Exception {
    Optional<String> unavailable = PgBouncer.unavailable();
    assumeTrue(unavailable.isEmpty(), () -> "PgBouncerTest skipped: " + unavailable.orElse(""));
    database = new DemoNodes(dir);
    String direct = database.jdbcUrl();
    bouncer = PgBouncer.start(URI.create(direct.substring("jdbc:".length())).getPort());
    nodes = DemoNodes.on(bouncer.jdbcUrl(), dir,
        "-Didempotency.on-in-flight=wait",
        // The listener's session bypasses the pooler (issue 27): the only direct connection.
        "-Didempotency.jdbc.listen-url=" + direct,
        "-Didempotency.ttl=3s",
        "-Didempotency.purge.interval=1s",
        "-Didempotency.lease=2s",
        "-Didempotency.jdbc.connect-timeout=500ms");
    nodeA = DemoNodes.freePort();
    nodeB = DemoNodes.freePort();
    nodes.launch(nodeA);
    nodes.launch(nodeB);
    for (int port : new int[] {nodeA, nodeB}) {
      if (!nodes.awaitHealthy(port, Duration.ofSeconds(90))) {
        throw new AssertionError("node " + port + " did not become healthy through PgBouncer;"
            + " its log:\n" + nodes.log(port) + "\nPgBouncer's log:\n" + bouncer.log());
      }
    }
  }

  @AfterAll
  static void stopAll() throws Exception {
    // Nodes first, then the pooler they use, then the database behind it.
    try (AutoCloseable db = database; AutoCloseable pooler = bouncer; AutoCloseable fleet = nodes) {
      // closed in reverse order of declaration
    }
  }

  @Test
  @Order(1)
  void bothNodes_throughPgBouncerInTransactionPooling_healthy() throws Exception {
    for (int port : new int[] {nodeA, nodeB}) {
      assertThat(nodes.healthy(port)).as("node %d healthy", port).isTrue();
    }
    // The nodes' pools are PgBouncer's clients, not PostgreSQL's.
    assertThat(bouncer.log()).contains("login attempt: db=postgres user=postgres");
  }

  @Test
  @Order(2)
  void payment_replayedOnBothNodes_onePaymentOneCharge() throws Exception {
    String key = UUID.randomUUID().toString();
    long amount = amounts.incrementAndGet();

    HttpResponse<String> paid = pay(nodeA, key, amount, "");
    HttpResponse<String> replayA = pay(nodeA, key, amount, "");
    HttpResponse<String> replayB = pay(nodeB, key, amount, "");

    assertThat(paid.statusCode()).as(paid.body()).isEqualTo(201);
    assertThat(paid.headers().firstValue("Idempotent-Replayed")).isEmpty();
    for (HttpResponse<String> replay : List.of(replayA, replayB)) {
      assertThat(replay.statusCode()).as(replay.body()).isEqualTo(201);
      assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
      assertThat(replay.body()).isEqualTo(paid.body());
    }
    assertThat(payments(amount)).as("payments of %d", amount).isEqualTo(1);
    assertThat(charges(amount)).as("charges of %d", amount).isEqualTo(1);
  }

  /**
   * Through PgBouncer alone, a LISTEN lands on a server connection that goes to another client
   * after the transaction, and the waiter got 409 after its whole 10 s wait-timeout.
   */
  @Test
  @Order(3)
  void duplicateOnOtherNode_whileFirstRuns_wokenWithinSecondsOfTheAnswer() throws Exception {
    String key = UUID.randomUUID().toString();
    long amount = amounts.incrementAndGet();
    long sent = System.nanoTime();
    CompletableFuture<Long> firstAt = new CompletableFuture<>();
    CompletableFuture<HttpResponse<String>> first =
        client.sendAsync(payment(nodeA, key, amount, "?delayMs=2000"),
                HttpResponse.BodyHandlers.ofString())
            .whenComplete((response, failure) -> firstAt.complete(System.nanoTime()));
    Thread.sleep(300);
    HttpResponse<String> waited = pay(nodeB, key, amount, "?delayMs=2000");
    long waitedAt = System.nanoTime();
    HttpResponse<String> answered = first.get(30, TimeUnit.SECONDS);

    assertThat(answered.statusCode()).as(answered.body()).isEqualTo(201);
    assertThat(waited.statusCode()).as("the waiter's answer: %s", waited.body()).isEqualTo(201);
    assertThat(waited.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(waited.body()).isEqualTo(answered.body());
    long lateMillis = TimeUnit.NANOSECONDS.toMillis(waitedAt - firstAt.get());
    System.out.printf("PgBouncerTest: first answered after %d ms, the waiter %d ms after it%n",
        TimeUnit.NANOSECONDS.toMillis(firstAt.get() - sent), lateMillis); // the figure
    // Woken by the notification, not by polling or its 10 s wait-timeout; generous for a loaded
    // machine (about 1 s is expected).
    assertThat(lateMillis).as("ms between the first's answer and the waiter's").isLessThan(3000);
    assertThat(payments(amount)).isEqualTo(1);
    assertThat(charges(amount)).isEqualTo(1);
  }

  @Test
  @Order(4)
  void expiredKeys_whileBothNodesRun_purgedWithoutError() throws Exception {
    List<String> keys = List.of(UUID.randomUUID().toString(), UUID.randomUUID().toString(),
        UUID.randomUUID().toString());
    for (int i = 0; i < keys.size(); i++) {
      HttpResponse<String> paid =
          pay(i % 2 == 0 ? nodeA : nodeB, keys.get(i), amounts.incrementAndGet(), "");
      assertThat(paid.statusCode()).as(paid.body()).isEqualTo(201);
    }
    String stored = "SELECT count(*) FROM idempotency_keys WHERE idem_key IN (?, ?, ?)";
    assertThat(database.scalar(stored, keys.toArray())).isEqualTo(3);

    // ttl 3 s, a purge every second on each node: gone within seconds; 30 s for a loaded machine.
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    long left = 3;
    while (left > 0 && System.nanoTime() < deadline) {
      Thread.sleep(200);
      left = database.scalar(stored, keys.toArray());
    }
    assertThat(left).as("expired keys not purged after 30 s").isZero();
    Pattern purgeError = Pattern.compile("(?i)purg[^\\n]*(fail|error|exception)");
    for (int port : new int[] {nodeA, nodeB}) {
      assertThat(nodes.log(port)).as("node %d's log", port)
          .doesNotContain("purge of expired idempotency keys failed")
          .doesNotContainPattern(purgeError);
      assertThat(nodes.alive(port)).isTrue();
    }
  }

  @Test
  @Order(5)
  void nodeKilledMidRequest_retriedOnOtherNode_paidAndChargedOnce() throws Exception {
    String key = UUID.randomUUID().toString();
    long amount = amounts.incrementAndGet();
    CompletableFuture<HttpResponse<String>> lost = client.sendAsync(
        payment(nodeA, key, amount, "?delayMs=3000"), HttpResponse.BodyHandlers.ofString());
    // Node A holds the key (its claim committed) before it is killed.
    long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
    while (database.scalar("SELECT count(*) FROM idempotency_keys WHERE idem_key = ?", key) == 0
        && System.nanoTime() < deadline) {
      Thread.sleep(50);
    }
    assertThat(database.scalar("SELECT count(*) FROM idempotency_keys WHERE idem_key = ?", key))
        .as("node A claimed the key").isEqualTo(1);
    nodes.kill(nodeA);
    lost.cancel(true);

    // The client retries on B; B takes the key over once A's lease (2 s) has run out.
    HttpResponse<String> retried = pay(nodeB, key, amount, "?delayMs=3000");
    deadline = System.nanoTime() + Duration.ofSeconds(40).toNanos();
    while (retried.statusCode() != 201 && System.nanoTime() < deadline) {
      // 409: A's lease has not run out yet (B's wait for it is bounded by its wait-timeout).
      assertThat(retried.statusCode()).as(retried.body()).isEqualTo(409);
      Thread.sleep(200);
      retried = pay(nodeB, key, amount, "?delayMs=3000");
    }

    assertThat(retried.statusCode()).as(retried.body()).isEqualTo(201);
    assertThat(payments(amount)).as("payments of %d", amount).isEqualTo(1);
    assertThat(charges(amount)).as("charges of %d", amount).isEqualTo(1);
  }

  HttpRequest payment(int port, String key, long amount, String query) {
    return HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/payments" + query))
        .timeout(Duration.ofSeconds(30))
        .header("Idempotency-Key", key)
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(
            "{\"amount\": " + amount + ", \"currency\": \"EUR\"}"))
        .build();
  }

  HttpResponse<String> pay(int port, String key, long amount, String query) throws Exception {
    return client.send(payment(port, key, amount, query), HttpResponse.BodyHandlers.ofString());
  }

  /** Counted on PostgreSQL directly, not through the pooler. */
  static long payments(long amount) throws Exception {
    return database.scalar("SELECT count(*) FROM payments WHERE amount = ?", amount);
  }

  static long charges(long amount) throws Exception {
    return database.scalar("SELECT count(*) FROM charges WHERE amount = ?", amount);
  }
}
