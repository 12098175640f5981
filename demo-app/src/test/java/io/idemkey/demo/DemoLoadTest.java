package io.idemkey.demo;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The demo under load at its defaults, as a user's first run (SPEC §15; issue 22). Regression
 * tests: at 26eceaf, 30 payments at once with a 300 ms card processor got 0 to 3 answers 201 and
 * the rest 503 (some after the card was charged); with a pool of 4, 4 payments of 1 s at once
 * got 0 to 2; with the database stopped, each request waited its own connect-timeout.
 * Bounded in count and time; no assertion of speed beyond "not the 30 s pool wait".
 */
class DemoLoadTest {

  @TempDir Path dir;

  final HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

  HttpRequest payment(int port, String query, long amount) {
    return HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/payments" + query))
        .timeout(Duration.ofSeconds(90))
        .header("Idempotency-Key", UUID.randomUUID().toString())
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(
            "{\"amount\": " + amount + ", \"currency\": \"EUR\"}"))
        .build();
  }

  /** Sends {@code count} payments at once; returns each answer's status (and body if not 201). */
  List<String> atOnce(int port, int count, String query) throws Exception {
    List<CompletableFuture<HttpResponse<String>>> answers = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      answers.add(client.sendAsync(payment(port, query, 100 + i),
          HttpResponse.BodyHandlers.ofString()));
    }
    List<String> statuses = new ArrayList<>();
    for (CompletableFuture<HttpResponse<String>> answer : answers) {
      HttpResponse<String> response = answer.get(120, TimeUnit.SECONDS);
      statuses.add(response.statusCode() == 201
          ? "201" : response.statusCode() + " " + response.body());
    }
    return statuses;
  }

  @Test
  void thirtyPaymentsAtOnce_processorTakes300ms_defaults_allPaidEachChargedOnce()
      throws Exception {
    try (DemoNodes cluster = new DemoNodes(dir);
        DemoApp node = DemoApp.start(0, cluster.jdbcUrl(), "postgres", "postgres")) {
      // A payment that fails first (500): its key is released on the node's own connection.
      assertThat(client.send(payment(node.port(), "?fail=true", 1),
          HttpResponse.BodyHandlers.ofString()).statusCode()).isEqualTo(500);

      List<String> statuses = atOnce(node.port(), 30, "?processorDelayMs=300");

      assertThat(statuses).as("30 payments at once on the demo's default pool").containsOnly("201");
      assertThat(cluster.scalar("SELECT count(*) FROM payments")).isEqualTo(30);
      assertThat(cluster.scalar("SELECT count(*) FROM charges")).isEqualTo(30);
    }
  }

  @Test
  void poolOfFour_sixPaymentsOfASecondAtOnce_allPaid() throws Exception {
    try (DemoNodes cluster = new DemoNodes(dir, "-Didempotency.jdbc.pool-size=4")) {
      int port = DemoNodes.freePort();
      cluster.start(port);
      assertThat(atOnce(port, 4, "?delayMs=1000")).containsOnly("201");
      assertThat(atOnce(port, 6, "?delayMs=1000")).containsOnly("201");
      assertThat(cluster.scalar("SELECT count(*) FROM payments")).isEqualTo(10);
      assertThat(cluster.scalar("SELECT count(*) FROM charges")).isEqualTo(10);
    }
  }

  @Test
  void databaseStopped_newKeysAnswered503WithinTheBound_firstPaymentAfterItIsBackIsPaid()
      throws Exception {
    try (DemoNodes cluster = new DemoNodes(dir)) {
      int port = DemoNodes.freePort();
      cluster.start(port);
      assertThat(atOnce(port, 1, "")).containsOnly("201");
      cluster.stopDatabase();

      long sent = System.nanoTime();
      List<String> statuses = atOnce(port, 60, "");
      Duration all = Duration.ofNanos(System.nanoTime() - sent);
      assertThat(statuses).allSatisfy(status ->
          assertThat(status).startsWith("503").contains("store-unavailable"));
      // Each within about the connect-timeout (2 s), not after a pool's 30 s wait.
      assertThat(all).isLessThan(Duration.ofSeconds(20));
      // Known down: the next are answered without each waiting for a connection.
      assertThat(atOnce(port, 10, "")).allSatisfy(status -> assertThat(status).startsWith("503"));

      cluster.startDatabase();
      String paid = null;
      long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      while (!"201".equals(paid) && System.nanoTime() < deadline) {
        paid = atOnce(port, 1, "").get(0);
        if (!"201".equals(paid)) {
          Thread.sleep(250);
        }
      }
      assertThat(paid).as("a payment once PostgreSQL is back, no restart").isEqualTo("201");
    }
  }
}
