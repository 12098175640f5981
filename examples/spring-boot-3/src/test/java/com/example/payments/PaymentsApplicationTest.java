package com.example.payments;

import static org.assertj.core.api.Assertions.assertThat;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import io.micrometer.core.instrument.MeterRegistry;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * The example on Spring Boot 3.5, a real server and a real PostgreSQL: what a client of the API
 * sees, and the starter's health component and meters (the starter is built against Boot 4: this
 * is the proof that it works on 3.5).
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class PaymentsApplicationTest {

  static final EmbeddedPostgres POSTGRES = start();

  static EmbeddedPostgres start() {
    try {
      return EmbeddedPostgres.builder().start();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @DynamicPropertySource
  static void database(DynamicPropertyRegistry registry) {
    registry.add("spring.datasource.url",
        () -> "jdbc:postgresql://localhost:" + POSTGRES.getPort() + "/postgres");
    registry.add("spring.datasource.username", () -> "postgres");
    registry.add("spring.datasource.password", () -> "postgres");
  }

  @AfterAll
  static void stop() throws IOException {
    POSTGRES.close();
  }

  @LocalServerPort int port;
  @Autowired MeterRegistry meters;
  final HttpClient client = HttpClient.newHttpClient();

  HttpResponse<String> post(String key, String json) throws Exception {
    HttpRequest.Builder request =
        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/payments"))
            .timeout(Duration.ofSeconds(30))
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(json));
    if (key != null) {
      request.header("Idempotency-Key", key);
    }
    return client.send(request.build(), HttpResponse.BodyHandlers.ofString());
  }

  HttpResponse<String> get(String path) throws Exception {
    return client.send(
        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  double requests(String outcome) {
    return meters.get("idempotency.requests").tag("outcome", outcome).timer().count();
  }

  /** Meters are recorded after the response is sent: the client may read it first. */
  double awaitRequests(String outcome, double expected) throws InterruptedException {
    for (int i = 0; i < 100 && requests(outcome) < expected; i++) {
      Thread.sleep(20);
    }
    return requests(outcome);
  }

  long count() throws Exception {
    return Long.parseLong(client.send(
        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/payments/count")).build(),
        HttpResponse.BodyHandlers.ofString()).body());
  }

  @Test
  void retryWithTheSameKey_getsTheSameAnswer_onePayment() throws Exception {
    String key = UUID.randomUUID().toString();
    long before = count();

    HttpResponse<String> first = post(key, "{\"amount\": 1250, \"currency\": \"EUR\"}");
    HttpResponse<String> retry = post(key, "{\"amount\": 1250, \"currency\": \"EUR\"}");

    assertThat(first.statusCode()).isEqualTo(201);
    assertThat(retry.statusCode()).isEqualTo(201);
    assertThat(retry.body()).isEqualTo(first.body());
    assertThat(retry.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(count()).isEqualTo(before + 1);
  }

  @Test
  void sameKeyOtherBody_is422_noKey_is400() throws Exception {
    String key = UUID.randomUUID().toString();
    assertThat(post(key, "{\"amount\": 1250, \"currency\": \"EUR\"}").statusCode()).isEqualTo(201);

    HttpResponse<String> reused = post(key, "{\"amount\": 999, \"currency\": \"EUR\"}");
    assertThat(reused.statusCode()).isEqualTo(422);
    assertThat(reused.body()).contains("urn:idemkey:problem:key-reused");
    HttpResponse<String> missing = post(null, "{\"amount\": 1, \"currency\": \"EUR\"}");
    assertThat(missing.statusCode()).isEqualTo(400);
    assertThat(missing.body()).contains("urn:idemkey:problem:missing-key");
  }

  @Test
  void serviceThrows_insertRolledBack_keyReleased() throws Exception {
    String key = UUID.randomUUID().toString();
    long before = count();

    assertThat(post(key, "{\"amount\": -5, \"currency\": \"EUR\"}").statusCode()).isEqualTo(500);
    assertThat(count()).as("the insert before the exception was rolled back").isEqualTo(before);
    // The key was released: the same request runs again (and fails again), it is not replayed.
    HttpResponse<String> again = post(key, "{\"amount\": -5, \"currency\": \"EUR\"}");
    assertThat(again.statusCode()).isEqualTo(500);
    assertThat(again.headers().firstValue("Idempotent-Replayed")).isEmpty();
  }

  @Test
  void health_databaseUp_idempotencyComponentIsUpWithItsTable() throws Exception {
    HttpResponse<String> health = get("/actuator/health/idempotency");

    assertThat(health.statusCode()).isEqualTo(200);
    assertThat(health.body()).contains("\"status\":\"UP\"").contains("idempotency_keys");
  }

  @Test
  void metrics_executedReplayedReusedAndMissingKey_eachCountedUnderItsOutcome() throws Exception {
    double executed = requests("executed");
    double replayed = requests("replayed");
    double mismatch = requests("fingerprint_mismatch");
    double badRequest = requests("bad_request");
    String key = UUID.randomUUID().toString();

    post(key, "{\"amount\": 700, \"currency\": \"EUR\"}");
    post(key, "{\"amount\": 700, \"currency\": \"EUR\"}");
    post(key, "{\"amount\": 701, \"currency\": \"EUR\"}");
    post(null, "{\"amount\": 700, \"currency\": \"EUR\"}");

    assertThat(awaitRequests("executed", executed + 1)).isEqualTo(executed + 1);
    assertThat(awaitRequests("replayed", replayed + 1)).isEqualTo(replayed + 1);
    assertThat(awaitRequests("fingerprint_mismatch", mismatch + 1)).isEqualTo(mismatch + 1);
    assertThat(awaitRequests("bad_request", badRequest + 1)).isEqualTo(badRequest + 1);
  }
}
