package io.idemkey.demo;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.sql.SQLException;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The demo's charge step (SPEC §12) across a node killed at two instants, made deterministic:
 * demo nodes as processes on a PostgreSQL the test owns, every node charging at the card processor
 * of one node that is never killed ({@code demo.processor-url}), so that the processor outlives
 * the node that called it, as another service would.
 */
class StepsDemoTest {

  @TempDir Path dir;
  DemoNodes cluster;
  int processorPort;
  final HttpClient client =
      HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

  @BeforeEach
  void startCluster() throws Exception {
    processorPort = DemoNodes.freePort();
    cluster = new DemoNodes(dir, "-Didempotency.lease=2s",
        "-Didempotency.jdbc.connect-timeout=500ms",
        "-Ddemo.processor-url=http://127.0.0.1:" + processorPort + "/processor");
    cluster.start(processorPort);
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

  CompletableFuture<HttpResponse<String>> postAsync(
      int port, String query, String key, long amount) {
    return CompletableFuture.supplyAsync(() -> {
      try {
        return post(port, query, key, amount);
      } catch (Exception e) {
        return null; // the node was killed under the request
      }
    });
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


  void awaitScalar(long expected, String sql, Object... parameters) throws Exception {
    for (int i = 0; i < 400; i++) {
      if (cluster.scalar(sql, parameters) == expected) {
        return;
      }
      Thread.sleep(25);
    }
    throw new AssertionError("never " + expected + ": " + sql);
  }

  long chargeStepsOf(String key) throws SQLException {
    return cluster.scalar("SELECT count(*) FROM idempotency_keys_steps WHERE idem_key = ?"
        + " AND name = 'charge'", key);
  }

  long processorCalls() throws SQLException {
    return cluster.scalar("SELECT count(*) FROM processor_calls");
  }

  long chargesOf(long amount) throws SQLException {
    return cluster.scalar("SELECT count(*) FROM charges WHERE amount = ?", amount);
  }

  long paymentsOf(long amount) throws SQLException {
    return cluster.scalar("SELECT count(*) FROM payments WHERE amount = ?", amount);
  }

  @Test
  void nodeKilledAfterTheChargeReturnedBeforeThePayment_retryOnAnotherNodeDoesNotCallAgain()
      throws Exception {
    int doomed = DemoNodes.freePort();
    int other = DemoNodes.freePort();
    cluster.start(doomed);
    cluster.start(other);
    String key = UUID.randomUUID().toString();
    long amount = 8001;

    // delayMs: the handler sleeps after its charge step and before its payment insert.
    CompletableFuture<HttpResponse<String>> first =
        postAsync(doomed, "?delayMs=6000", key, amount);
    awaitScalar(1, "SELECT count(*) FROM idempotency_keys_steps WHERE idem_key = ?", key);
    cluster.kill(doomed);
    assertThat(first.get(10, TimeUnit.SECONDS)).as("the client's connection broke").isNull();
    assertThat(processorCalls()).isEqualTo(1);
    assertThat(chargesOf(amount)).isEqualTo(1);
    assertThat(paymentsOf(amount)).isZero();

    HttpResponse<String> retried = retryWhileInProgress(other, "?delayMs=6000", key, amount);

    assertThat(retried.statusCode()).as("retry: %s", retried.body()).isEqualTo(201);
    assertThat(retried.headers().firstValue("Idempotent-Replayed")).as("ran, not replayed")
        .isEmpty();
    assertThat(processorCalls()).as("processor calls").isEqualTo(1);
    assertThat(chargesOf(amount)).isEqualTo(1);
    assertThat(paymentsOf(amount)).isEqualTo(1);
  }

  @Test
  void nodeKilledAfterTheCallWentOutBeforeItsResultWasStored_retryCallsAgainWithTheSameKey()
      throws Exception {
    int doomed = DemoNodes.freePort();
    int other = DemoNodes.freePort();
    cluster.start(doomed);
    cluster.start(other);
    String key = UUID.randomUUID().toString();
    long amount = 8002;

    // processorDelayMs: the processor sleeps after its charge and before answering.
    CompletableFuture<HttpResponse<String>> first =
        postAsync(doomed, "?processorDelayMs=3000", key, amount);
    awaitScalar(1, "SELECT count(*) FROM processor_calls");
    cluster.kill(doomed);
    assertThat(first.get(10, TimeUnit.SECONDS)).as("the client's connection broke").isNull();
    assertThat(chargeStepsOf(key)).as("the charge's result, never stored").isZero();

    HttpResponse<String> retried =
        retryWhileInProgress(other, "?processorDelayMs=3000", key, amount);

    assertThat(retried.statusCode()).as("retry: %s", retried.body()).isEqualTo(201);
    assertThat(processorCalls()).as("processor calls").isEqualTo(2);
    // Both calls carried the step's derived key: the processor charged once and replayed.
    assertThat(cluster.scalar("SELECT count(*) FROM processor_keys")).isEqualTo(1);
    assertThat(chargesOf(amount)).as("charges").isEqualTo(1);
    assertThat(paymentsOf(amount)).isEqualTo(1);
    assertThat(chargeStepsOf(key)).isEqualTo(1);
  }
}
