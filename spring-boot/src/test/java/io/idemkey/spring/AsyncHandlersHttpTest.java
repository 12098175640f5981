package io.idemkey.spring;

import static io.idemkey.spring.Http.order;
import static io.idemkey.spring.Http.text;
import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.spring.sample.AsyncOrderController;
import io.idemkey.spring.sample.SampleApplication;
import io.idemkey.store.TestDatabase;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.UUID;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * Spring MVC handlers that go asynchronous ({@code DeferredResult}, {@code Callable}, {@code
 * WebAsyncTask}, {@code StreamingResponseBody}) in a Boot application on a real Tomcat and the
 * embedded PostgreSQL, behind the filter as the auto-configuration registers it: Spring MVC
 * answers them with startAsync() and an ASYNC dispatch back through the filter, so each runs once
 * and is replayed byte for byte (SPEC §6), and another body under the same key is 422 (SPEC §4).
 * Mapped for REQUEST dispatches only, the filter let the ASYNC dispatch past it: the first client
 * got an empty body, the key was released and nothing was deduplicated.
 */
@SpringBootTest(classes = SampleApplication.class,
    webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class AsyncHandlersHttpTest {

  @DynamicPropertySource
  static void database(DynamicPropertyRegistry registry) {
    registry.add("spring.datasource.url", TestDatabase::jdbcUrl);
    registry.add("spring.datasource.username", TestDatabase::user);
    registry.add("spring.datasource.password", TestDatabase::password);
  }

  @LocalServerPort int port;
  @Autowired AsyncOrderController controller;

  Http http;
  String key;
  String reference;

  @BeforeEach
  void setUp() {
    http = new Http(port);
    key = UUID.randomUUID().toString();
    reference = "ref-" + UUID.randomUUID();
  }

  @Test
  void deferredResult_sameKeyTwice_replaysTheFirstResponseByteForByteAndRunsOnce() {
    HttpResponse<byte[]> first = assertRunsOnceAndReplays("deferred");

    assertThat(first.statusCode()).isEqualTo(201);
    assertThat(first.headers().firstValue("Location")).isPresent();
    assertThat(first.headers().firstValue("Content-Type")).hasValue("application/json");
    assertThat(text(first)).contains("\"reference\":\"" + reference + "\"");
  }

  @Test
  void deferredResult_sameKeyDifferentBody_is422KeyReusedWithoutRunningTheHandler() {
    assertOtherBodyRefused("deferred", 201);
  }

  @Test
  void callable_sameKeyTwice_replaysTheFirstResponseByteForByteAndRunsOnce() {
    HttpResponse<byte[]> first = assertRunsOnceAndReplays("callable");

    assertThat(first.statusCode()).isEqualTo(201);
    assertThat(first.headers().firstValue("Content-Type").orElseThrow())
        .isEqualToIgnoringCase("text/plain;charset=UTF-8");
    assertThat(text(first)).startsWith("order ").contains(" placed \u20ac run ");
  }

  @Test
  void callable_sameKeyDifferentBody_is422KeyReusedWithoutRunningTheHandler() {
    assertOtherBodyRefused("callable", 201);
  }

  @Test
  void webAsyncTask_sameKeyTwice_replaysTheFirstResponseByteForByteAndRunsOnce() {
    HttpResponse<byte[]> first = assertRunsOnceAndReplays("task");

    assertThat(first.statusCode()).isEqualTo(201);
    assertThat(text(first)).startsWith("order ").contains(" placed by a task, run ");
  }

  @Test
  void streamingResponseBody_sameKeyTwice_replaysEveryChunkByteForByteAndRunsOnce() {
    HttpResponse<byte[]> first = assertRunsOnceAndReplays("streaming");

    assertThat(first.statusCode()).isEqualTo(200);
    String body = new String(first.body(), StandardCharsets.UTF_8);
    assertThat(body.lines()).hasSize(3);
    assertThat(body).startsWith("chunk 1 of order ").contains("chunk 3 of order ")
        .endsWith("\u20ac\n");
  }

  @Test
  void streamingResponseBody_sameKeyDifferentBody_is422KeyReusedWithoutRunningTheHandler() {
    assertOtherBodyRefused("streaming", 200);
  }

  /**
   * Sends the same order twice under one key: the second is the first's status, headers and
   * bytes, marked as a replay, and the handler ran (and placed the order) once.
   */
  private HttpResponse<byte[]> assertRunsOnceAndReplays(String endpoint) {
    int before = controller.executions(endpoint);

    HttpResponse<byte[]> first =
        http.post("/async/" + endpoint, order(reference), "Idempotency-Key", key);
    HttpResponse<byte[]> second =
        http.post("/async/" + endpoint, order(reference), "Idempotency-Key", key);

    assertThat(first.headers().firstValue("Idempotent-Replayed")).isEmpty();
    assertThat(first.body()).isNotEmpty();
    assertThat(second.statusCode()).isEqualTo(first.statusCode());
    assertThat(second.body()).isEqualTo(first.body());
    assertThat(second.headers().firstValue("Content-Type"))
        .isEqualTo(first.headers().firstValue("Content-Type"));
    assertThat(second.headers().firstValue("X-Run"))
        .isEqualTo(first.headers().firstValue("X-Run")).isPresent();
    assertThat(second.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(controller.executions(endpoint)).isEqualTo(before + 1);
    assertThat(Rows.orders(reference)).isEqualTo(1);
    return first;
  }

  /** Another order under a key already used: 422 key-reused, and the handler does not run. */
  private void assertOtherBodyRefused(String endpoint, int status) {
    HttpResponse<byte[]> first =
        http.post("/async/" + endpoint, order(reference), "Idempotency-Key", key);
    int before = controller.executions(endpoint);

    HttpResponse<byte[]> other =
        http.post("/async/" + endpoint, order("other-" + reference), "Idempotency-Key", key);

    assertThat(first.statusCode()).isEqualTo(status);
    assertThat(other.statusCode()).isEqualTo(422);
    assertThat(other.headers().firstValue("Content-Type")).hasValue("application/problem+json");
    assertThat(text(other)).contains("urn:idemkey:problem:key-reused");
    assertThat(controller.executions(endpoint)).isEqualTo(before);
    assertThat(Rows.orders("other-" + reference)).isZero();
  }
}
