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
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/** The example on a real server and a real PostgreSQL: what a client of the API sees. */
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
}
