package io.idemkey.demo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
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
 * woken when the first answers, the purge of expired keys, and a node killed mid-request; and a
 * node that lacks what the pooler needs ({@code prepareThreshold=0}, a listener's direct URL)
 * says so.
 *
 * <p>Each node's pool goes through PgBouncer ({@code prepareThreshold=0}); its listener for
 * waiters, the one session a node keeps that cannot share a server connection, goes to PostgreSQL
 * directly ({@code idempotency.jdbc.listen-url}). Skipped, saying why, when pgbouncer is not
 * installed. One PostgreSQL, PgBouncer and pair of nodes serve every test, in order; the fifth
 * kills node A. Each payment has an amount of its own, which is how its rows are counted.
 *
 * <p>The nodes differ in lease and ttl only. A waiter also looks when the holder's lease would
 * end, so within a lease it is woken with or without a notification: node B, the holder in the
 * waiter's test, has a lease of 10 s, far beyond that test's bound, so that only the notification
 * wakes the waiter in time. Node A has a lease of 2 s and a ttl of 3 s (a ttl is at least the
 * lease), so that its keys expire within the purge's test and a take-over after its death comes
 * quickly.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class PgBouncerTest {

  @TempDir static Path dir;

  static DemoNodes database;
  static PgBouncer bouncer;
  /** Node A's process and node B's: one each, as they differ in their properties. */
  static DemoNodes processesA;
  static DemoNodes processesB;
  static Node nodeA;
  static Node nodeB;
  static final AtomicLong amounts = new AtomicLong(27_000);

  final HttpClient client =
      HttpClient.newBuilder()
          .version(HttpClient.Version.HTTP_1_1)
          .connectTimeout(Duration.ofSeconds(5))
          .build();

  /** A node process: which {@link DemoNodes} started it, on which port. */
  record Node(String name, DemoNodes processes, int port) {
    String log() {
      return processes.log(port);
    }

    @Override
    public String toString() {
      return "node " + name + " (port " + port + ")";
    }
  }

  @BeforeAll
  static void startDatabaseBouncerAndNodes() throws Exception {
    Optional<String> unavailable = PgBouncer.unavailable();
    // Surefire counts a class skipped in @BeforeAll as "Tests run: 0" and shows no reason: say it.
    unavailable.ifPresent(why -> System.out.println("PgBouncerTest skipped: " + why));
    assumeTrue(unavailable.isEmpty(), () -> "PgBouncerTest skipped: " + unavailable.orElse(""));
    database = new DemoNodes(dir);
    String direct = database.jdbcUrl();
    bouncer = PgBouncer.start(URI.create(direct.substring("jdbc:".length())).getPort());
    String pooled = bouncer.jdbcUrl() + "?prepareThreshold=0";
    List<String> common = List.of(
        "-Didempotency.on-in-flight=wait",
        // The listener's session bypasses the pooler (issue 27): each node's one direct
        // connection.
        "-Didempotency.jdbc.listen-url=" + direct,
        "-Didempotency.purge.interval=1s",
        "-Didempotency.jdbc.connect-timeout=500ms");
    processesA = DemoNodes.on(pooled, dir, properties(common,
        "-Didempotency.lease=2s", "-Didempotency.ttl=3s",
        "-Didempotency.completion-timeout=3s")); // at most the ttl
    processesB = DemoNodes.on(pooled, dir, properties(common,
        "-Didempotency.lease=10s", "-Didempotency.ttl=10s",
        "-Didempotency.completion-timeout=10s"));
    nodeA = new Node("A", processesA, DemoNodes.freePort());
    nodeB = new Node("B", processesB, DemoNodes.freePort());
    for (Node node : List.of(nodeA, nodeB)) {
      node.processes().launch(node.port());
    }
    for (Node node : List.of(nodeA, nodeB)) {
      if (!node.processes().awaitHealthy(node.port(), Duration.ofSeconds(90))) {
        throw new AssertionError(node + " did not become healthy through PgBouncer; its log:\n"
            + node.log() + "\nPgBouncer's log:\n" + bouncer.log());
      }
    }
  }

  static String[] properties(List<String> common, String... own) {
    List<String> all = new ArrayList<>(common);
    all.addAll(List.of(own));
    return all.toArray(String[]::new);
  }

  @AfterAll
  static void stopAll() throws Exception {
    // Nodes first, then the pooler they use, then the database behind it (try-with-resources
    // closes in reverse order, and skips what was never started).
    try (AutoCloseable db = database; AutoCloseable pooler = bouncer;
        AutoCloseable a = processesA; AutoCloseable b = processesB) {
      // only closing
    }
  }

  @Test
  @Order(1)
  void bothNodes_throughPgBouncerInTransactionPooling_healthy() throws Exception {
    for (Node node : List.of(nodeA, nodeB)) {
      assertThat(node.processes().healthy(node.port())).as("%s healthy", node).isTrue();
      assertThat(health(node)).as("%s's /health", node).contains("\"waiters\":\"woken\"");
    }
    // The nodes' pools are PgBouncer's clients.
    assertThat(bouncer.log()).contains("login attempt: db=postgres user=postgres");
  }

  @Test
  @Order(2)
  void payment_replayedOnBothNodes_onePaymentOneCharge() throws Exception {
    String key = UUID.randomUUID().toString();
    long amount = amounts.incrementAndGet();

    // Paid on B, whose ttl (10 s) leaves the replays time on a loaded machine.
    HttpResponse<String> paid = pay(nodeB, key, amount, "");
    HttpResponse<String> replayB = pay(nodeB, key, amount, "");
    HttpResponse<String> replayA = pay(nodeA, key, amount, "");

    assertThat(paid.statusCode()).as(paid.body()).isEqualTo(201);
    assertThat(paid.headers().firstValue("Idempotent-Replayed")).isEmpty();
    for (HttpResponse<String> replay : List.of(replayB, replayA)) {
      assertThat(replay.statusCode()).as(replay.body()).isEqualTo(201);
      assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
      assertThat(replay.body()).isEqualTo(paid.body());
    }
    assertThat(payments(amount)).as("payments of %d", amount).isEqualTo(1);
    assertThat(charges(amount)).as("charges of %d", amount).isEqualTo(1);
  }

  /**
   * Through PgBouncer alone, a LISTEN lands on a server connection that goes to another client
   * after its transaction: the waiter got 409 after its whole 10 s wait-timeout.
   */
  @Test
  @Order(3)
  void duplicateOnOtherNode_whileFirstRuns_wokenWithinSecondsOfTheAnswer() throws Exception {
    String key = UUID.randomUUID().toString();
    long amount = amounts.incrementAndGet();
    long sent = System.nanoTime();
    CompletableFuture<Long> firstAt = new CompletableFuture<>();
    CompletableFuture<HttpResponse<String>> first =
        client.sendAsync(payment(nodeB, key, amount, "?delayMs=2000"),
                HttpResponse.BodyHandlers.ofString())
            .whenComplete((response, failure) -> firstAt.complete(System.nanoTime()));
    // The duplicate goes once B holds the key (not before 300 ms), so that it is the one waiting.
    Thread.sleep(300);
    awaitClaimed(key);
    HttpResponse<String> waited = pay(nodeA, key, amount, "?delayMs=2000");
    long waitedAt = System.nanoTime();
    HttpResponse<String> answered = first.get(30, TimeUnit.SECONDS);

    assertThat(answered.statusCode()).as(answered.body()).isEqualTo(201);
    assertThat(waited.statusCode()).as("the waiter's answer: %s", waited.body()).isEqualTo(201);
    assertThat(waited.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(waited.body()).isEqualTo(answered.body());
    long lateMillis = TimeUnit.NANOSECONDS.toMillis(waitedAt - firstAt.get());
    // The figures: when the first answered, and how long after it the waiter did.
    System.out.printf("PgBouncerTest: the first answered after %d ms, the waiter %d ms after it%n",
        TimeUnit.NANOSECONDS.toMillis(firstAt.get() - sent), lateMillis);
    // About a second is expected; 3 s is generous for a loaded machine and still far from what
    // wakes a waiter without a notification: B's lease ending (10 s), or the wait-timeout (10 s).
    assertThat(lateMillis).as("ms between the first's answer and the waiter's").isLessThan(3000);
    assertThat(payments(amount)).as("payments of %d", amount).isEqualTo(1);
    assertThat(charges(amount)).as("charges of %d", amount).isEqualTo(1);
  }

  @Test
  @Order(4)
  void expiredKeys_whileBothNodesRun_purgedWithoutError() throws Exception {
    List<String> keys = List.of(UUID.randomUUID().toString(), UUID.randomUUID().toString(),
        UUID.randomUUID().toString());
    for (String key : keys) {
      HttpResponse<String> paid = pay(nodeA, key, amounts.incrementAndGet(), "");
      assertThat(paid.statusCode()).as(paid.body()).isEqualTo(201);
    }
    String stored = "SELECT count(*) FROM idempotency_keys WHERE idem_key IN (?, ?, ?)";
    assertThat(database.scalar(stored, keys.toArray())).isEqualTo(3);

    // A's ttl is 3 s, and each node purges every second: gone within seconds; 30 s allowed for a
    // loaded machine.
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    long left = 3;
    while (left > 0 && System.nanoTime() < deadline) {
      Thread.sleep(200);
      left = database.scalar(stored, keys.toArray());
    }
    assertThat(left).as("expired keys left after 30 s").isZero();
    Pattern purgeWarning = Pattern.compile("(?im)^.*\\b(WARN|ERROR)\\b.*purg.*$");
    for (Node node : List.of(nodeA, nodeB)) {
      assertThat(node.log()).as("%s's log", node)
          .doesNotContainPattern(purgeWarning)
          .doesNotContain("at io.idemkey.store.PurgeSchedule");
      assertThat(node.processes().alive(node.port())).as("%s alive", node).isTrue();
    }
  }

  @Test
  @Order(5)
  void nodeKilledMidRequest_retriedOnOtherNode_paidAndChargedOnce() throws Exception {
    String key = UUID.randomUUID().toString();
    long amount = amounts.incrementAndGet();
    CompletableFuture<HttpResponse<String>> lost = client.sendAsync(
        payment(nodeA, key, amount, "?delayMs=3000"), HttpResponse.BodyHandlers.ofString());
    // A holds the key and has charged the card (the delay comes after the charge) when killed.
    long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
    while (charges(amount) == 0 && System.nanoTime() < deadline) {
      Thread.sleep(50);
    }
    assertThat(charges(amount)).as("A charged the card").isEqualTo(1);
    assertThat(lost).as("A still running the payment").isNotDone();
    nodeA.processes().kill(nodeA.port());
    lost.cancel(true);

    // The client retries on B, which takes the key over once A's lease (2 s) has run out.
    HttpResponse<String> retried = pay(nodeB, key, amount, "?delayMs=3000");
    deadline = System.nanoTime() + Duration.ofSeconds(40).toNanos();
    while (retried.statusCode() != 201 && System.nanoTime() < deadline) {
      // 409: B waited its wait-timeout and A's lease had not run out (it should have).
      assertThat(retried.statusCode()).as(retried.body()).isEqualTo(409);
      Thread.sleep(200);
      retried = pay(nodeB, key, amount, "?delayMs=3000");
    }

    assertThat(retried.statusCode()).as(retried.body()).isEqualTo(201);
    assertThat(payments(amount)).as("payments of %d", amount).isEqualTo(1);
    assertThat(charges(amount)).as("charges of %d", amount).isEqualTo(1);
  }

  /**
   * Without {@code prepareThreshold=0}, Flyway and the store failed on the first request with
   * {@code prepared statement "S_3" already exists}.
   */
  @Test
  @Order(6)
  void nodeThroughPgBouncer_statementsPreparedOnServer_refusesToStartNamingTheSetting()
      throws Exception {
    try (DemoNodes preparing = DemoNodes.on(bouncer.jdbcUrl(), dir,
        "-Didempotency.jdbc.listen-url=" + database.jdbcUrl(),
        "-Didempotency.jdbc.connect-timeout=500ms")) {
      int port = DemoNodes.freePort();
      Process node = preparing.launch(port);

      // Ends at once, or is healthy within the bound: no need to wait out the 90 s when it is.
      assertThat(preparing.awaitHealthy(port, Duration.ofSeconds(90)))
          .as("node healthy through a transaction pooler with statements prepared on the"
              + " server; its log:%n%s", preparing.log(port))
          .isFalse();
      assertThat(node.waitFor(30, TimeUnit.SECONDS)).as("the node ended").isTrue();
      assertThat(node.exitValue()).isNotZero();
      assertThat(preparing.log(port)).contains("prepareThreshold=0");
    }
  }

  @Test
  @Order(7)
  void nodeThroughPgBouncer_withoutListenUrl_saysWaitersAreNotWoken() throws Exception {
    try (DemoNodes deaf = DemoNodes.on(bouncer.jdbcUrl() + "?prepareThreshold=0", dir,
        "-Didempotency.on-in-flight=wait", "-Didempotency.jdbc.connect-timeout=500ms")) {
      Node node = new Node("C", deaf, DemoNodes.freePort());
      deaf.launch(node.port());
      assertThat(deaf.awaitHealthy(node.port(), Duration.ofSeconds(90)))
          .as("%s healthy; its log:%n%s", node, node.log()).isTrue();

      assertThat(health(node)).contains("not woken").contains("idempotency.jdbc.listen-url");
      assertThat(node.log()).contains("idempotency.jdbc.listen-url");
    }
  }

  /** Waits, at most 20 s, until a node has claimed {@code key}. */
  static void awaitClaimed(String key) throws Exception {
    String claimed = "SELECT count(*) FROM idempotency_keys WHERE idem_key = ?";
    long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
    while (database.scalar(claimed, key) == 0 && System.nanoTime() < deadline) {
      Thread.sleep(20);
    }
    assertThat(database.scalar(claimed, key)).as("rows of key %s", key).isEqualTo(1);
  }

  String health(Node node) throws Exception {
    return client.send(
            HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + node.port() + "/health"))
                .timeout(Duration.ofSeconds(10))
                .build(),
            HttpResponse.BodyHandlers.ofString())
        .body();
  }

  HttpRequest payment(Node node, String key, long amount, String query) {
    return HttpRequest.newBuilder(
            URI.create("http://127.0.0.1:" + node.port() + "/payments" + query))
        .timeout(Duration.ofSeconds(30))
        .header("Idempotency-Key", key)
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(
            "{\"amount\": " + amount + ", \"currency\": \"EUR\"}"))
        .build();
  }

  HttpResponse<String> pay(Node node, String key, long amount, String query) throws Exception {
    return client.send(payment(node, key, amount, query), HttpResponse.BodyHandlers.ofString());
  }

  /** Counted on PostgreSQL directly, not through the pooler. */
  static long payments(long amount) throws Exception {
    return database.scalar("SELECT count(*) FROM payments WHERE amount = ?", amount);
  }

  static long charges(long amount) throws Exception {
    return database.scalar("SELECT count(*) FROM charges WHERE amount = ?", amount);
  }
}
