package io.idemkey.demo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 9: a demo node as a process on a PostgreSQL the test owns: its pool is the size the
 * configuration says, and SIGTERM lets a request in flight finish.
 */
class DemoNodeLifecycleTest {

  static final String PAYMENT = "{\"amount\": 1250, \"currency\": \"EUR\"}";

  @TempDir Path dir;
  DemoNodes cluster;
  final HttpClient client =
      HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

  @AfterEach
  void stopAll() throws Exception {
    if (cluster != null) {
      cluster.close();
    }
  }

  CompletableFuture<HttpResponse<String>> post(int port, String query) {
    return client.sendAsync(
        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/payments" + query))
            .timeout(Duration.ofSeconds(60))
            .header("Idempotency-Key", UUID.randomUUID().toString())
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(PAYMENT))
            .build(),
        HttpResponse.BodyHandlers.ofString());
  }

  int demoConnections() throws Exception {
    return connections(DemoApp.APPLICATION_NAME);
  }

  int connections(String applicationName) throws Exception {
    try (Connection connection = cluster.connect();
        PreparedStatement count = connection.prepareStatement(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = ?")) {
      count.setString(1, applicationName);
      try (ResultSet row = count.executeQuery()) {
        row.next();
        return row.getInt(1);
      }
    }
  }

  @Test
  void poolSizeTwo_nodeNeverHoldsMoreThanTwoConnections() throws Exception {
    cluster = new DemoNodes(dir, "-Didempotency.jdbc.pool-size=2",
        "-Didempotency.jdbc.connect-timeout=2s");
    int port = DemoNodes.freePort();
    cluster.start(port);

    // Requests that each hold a connection (transactional mode) for a while, more than the pool.
    List<CompletableFuture<HttpResponse<String>>> answers = new ArrayList<>();
    for (int i = 0; i < 6; i++) {
      answers.add(post(port, "?delayMs=300"));
    }
    int most = 0;
    int mostOfTheNodesOwn = 0;
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (answers.stream().anyMatch(a -> !a.isDone()) && System.nanoTime() < deadline) {
      most = Math.max(most, demoConnections());
      mostOfTheNodesOwn =
          Math.max(mostOfTheNodesOwn, connections(DemoApp.APPLICATION_NAME + "-node"));
      Thread.sleep(50);
    }
    for (CompletableFuture<HttpResponse<String>> answer : answers) {
      assertThat(answer.get(30, TimeUnit.SECONDS).statusCode()).isIn(201, 503);
    }
    most = Math.max(most, demoConnections());

    assertThat(most).as("connections of the demo's pool").isBetween(1, 2);
    assertThat(mostOfTheNodesOwn).as("the store's own connections beside it")
        .isLessThanOrEqualTo(3);
  }

  @Test
  void health_keysDatabaseStopped_is503WithTheReason_thenOkOnceItIsBack() throws Exception {
    cluster = new DemoNodes(dir);
    try (DemoApp node = DemoApp.start(0, cluster.jdbcUrl(), "postgres", "postgres")) {
      assertThat(get(node.port(), "/health").statusCode()).isEqualTo(200);

      cluster.stopDatabase();
      HttpResponse<String> down = awaitHealth(node.port(), 503);
      assertThat(down.headers().firstValue("Content-Type")).hasValue("application/problem+json");
      assertThat(down.body()).contains("\"status\":503", "the keys' database is not usable: ");

      cluster.startDatabase();
      assertThat(awaitHealth(node.port(), 200).body()).contains("\"status\":\"ok\"");
    }
  }

  /**
   * Regression (issue 23): with PostgreSQL frozen, GET /stats and GET /payments/{id} took 10 s
   * (the pool's socket timeout), against about the connect timeout for a covered POST and
   * /health. Every database call of the demo is bounded by the connect timeout: the reads answer
   * 503 within a few of it, and so does a payment on /bare/payments, whose processor's calls are
   * bounded too; once the database answers again, so do they.
   */
  @Test
  void frozenDatabase_readsAndABarePayment_answer503WithinAboutTheConnectTimeout_thenRecover()
      throws Exception {
    // Hikari checks a connection idle for more than half a second before lending it; one used
    // since is lent as it is, as every connection of a busy pool is. Here every one is.
    cluster = new DemoNodes(dir, "-Didempotency.jdbc.connect-timeout=1s",
        "-Dcom.zaxxer.hikari.aliveBypassWindowMs=600000");
    int port = DemoNodes.freePort();
    cluster.start(port);
    HttpResponse<String> created = post(port, "").get(60, TimeUnit.SECONDS);
    assertThat(created.statusCode()).isEqualTo(201);
    String payment = created.headers().firstValue("Location").orElseThrow();
    assertThat(get(port, "/stats").statusCode()).isEqualTo(200);
    assertThat(get(port, payment).statusCode()).isEqualTo(200);

    try (AutoCloseable frozen = cluster.freezeDatabase()) {
      for (String path : List.of("/stats", payment, "/stats", payment)) {
        long started = System.nanoTime();
        HttpResponse<String> answer = get(port, path);
        Duration took = Duration.ofNanos(System.nanoTime() - started);
        assertThat(answer.statusCode()).as(path).isEqualTo(503);
        assertThat(answer.headers().firstValue("Content-Type"))
            .hasValue("application/problem+json");
        // 1 s bound; 10 s before (the pool's socketTimeout). Generous for a loaded machine.
        assertThat(took).as(path).isLessThan(Duration.ofSeconds(6));
      }
      long started = System.nanoTime();
      HttpResponse<String> bare = client.send(
          HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/bare/payments"))
              .timeout(Duration.ofSeconds(120))
              .header("Content-Type", "application/json")
              .POST(HttpRequest.BodyPublishers.ofString(PAYMENT))
              .build(),
          HttpResponse.BodyHandlers.ofString());
      Duration took = Duration.ofNanos(System.nanoTime() - started);
      assertThat(bare.statusCode()).isEqualTo(503);
      // Three tries of the charge, each bounded by 1 s; over 30 s before.
      assertThat(took).isLessThan(Duration.ofSeconds(15));
    }

    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (get(port, "/stats").statusCode() != 200 && System.nanoTime() < deadline) {
      Thread.sleep(200);
    }
    assertThat(get(port, "/stats").statusCode()).isEqualTo(200);
    assertThat(get(port, payment).body()).isEqualTo(created.body());
  }

  HttpResponse<String> get(int port, String path) throws Exception {
    return client.send(
        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
            .timeout(Duration.ofSeconds(20)).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  /** Asks /health until it answers {@code status} (it keeps an answer for a second), for 60 s. */
  HttpResponse<String> awaitHealth(int port, int status) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (true) {
      HttpResponse<String> answer = get(port, "/health");
      if (answer.statusCode() == status || System.nanoTime() > deadline) {
        assertThat(answer.statusCode()).as("/health: %s", answer.body()).isEqualTo(status);
        return answer;
      }
      Thread.sleep(200);
    }
  }

  @Test
  void sigterm_requestOnAnOpenKeepAliveConnection_gets503Problem() throws Exception {
    cluster = new DemoNodes(dir);
    int port = DemoNodes.freePort();
    Process node = cluster.start(port);
    try (Socket kept = new Socket("127.0.0.1", port)) {
      kept.setSoTimeout(30_000);
      String health = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
      assertThat(ProblemResponsesTest.exchange(kept, health)).startsWith("HTTP/1.1 200 ");

      CompletableFuture<HttpResponse<String>> slow = post(port, "?delayMs=5000");
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      // Its card charge (a call to this node's own processor) is done before the node is told to
      // stop: a stopping node refuses new requests, that call included.
      while (!get(port, "/stats").body().contains("\"charges\":1,")) {
        assertThat(System.nanoTime()).as("the slow request runs").isLessThan(deadline);
        Thread.sleep(50);
      }
      node.destroy(); // SIGTERM
      while (accepts(port)) {
        assertThat(System.nanoTime()).as("the node stops accepting").isLessThan(deadline);
        Thread.sleep(50);
      }

      // The connector stops accepting a moment before the handler refuses: until then a request
      // is still served (200). A cut connection answers nothing.
      String answer = ProblemResponsesTest.exchange(kept, health);
      while (answer.startsWith("HTTP/1.1 200 ") && !slow.isDone()) {
        answer = ProblemResponsesTest.exchange(kept, health);
      }
      ProblemResponsesTest.assertProblem(answer, 503);
      assertThat(slow.get(40, TimeUnit.SECONDS).statusCode()).isEqualTo(201);
    }
    assertThat(node.waitFor(30, TimeUnit.SECONDS)).as("the node exited").isTrue();
  }

  static boolean accepts(int port) {
    try (Socket probe = new Socket("127.0.0.1", port)) {
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  @Test
  void sigterm_requestRunningLongerThanTenSeconds_finishesThenNodeExits() throws Exception {
    cluster = new DemoNodes(dir);
    int port = DemoNodes.freePort();
    Process node = cluster.start(port);

    CompletableFuture<HttpResponse<String>> slow = post(port, "?delayMs=12000");
    Thread.sleep(1000);
    node.destroy(); // SIGTERM
    Thread.sleep(1000);

    // Draining: no new connections, but the request in flight gets its answer.
    assertThatThrownBy(() -> new Socket("127.0.0.1", port).close()).isInstanceOf(IOException.class);
    HttpResponse<String> answer = slow.get(40, TimeUnit.SECONDS);
    assertThat(answer.statusCode()).isEqualTo(201);
    assertThat(answer.body()).contains("\"status\":\"accepted\"");
    assertThat(node.waitFor(30, TimeUnit.SECONDS)).as("the node exited").isTrue();
  }
}
