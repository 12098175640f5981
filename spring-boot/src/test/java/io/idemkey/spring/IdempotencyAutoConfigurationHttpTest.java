package io.idemkey.spring;

import static io.idemkey.spring.Http.order;
import static io.idemkey.spring.Http.text;
import static org.assertj.core.api.Assertions.assertThat;

import com.jayway.jsonpath.JsonPath;
import io.idemkey.filter.IdempotencyFilter;
import io.idemkey.spring.sample.OrderController;
import io.idemkey.spring.sample.SampleApplication;
import io.idemkey.store.TestDatabase;
import io.micrometer.core.instrument.MeterRegistry;
import jakarta.servlet.DispatcherType;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.boot.web.servlet.FilterRegistrationBean;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * The sample application on a real Tomcat and the embedded PostgreSQL, with the defaults (not
 * transactional): the filter is registered by the auto-configuration alone.
 */
@SpringBootTest(classes = SampleApplication.class,
    webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class IdempotencyAutoConfigurationHttpTest {

  @DynamicPropertySource
  static void database(DynamicPropertyRegistry registry) {
    registry.add("spring.datasource.url", TestDatabase::jdbcUrl);
    registry.add("spring.datasource.username", TestDatabase::user);
    registry.add("spring.datasource.password", TestDatabase::password);
  }

  @LocalServerPort int port;
  @Autowired OrderController controller;
  @Autowired MeterRegistry meters;
  @Autowired FilterRegistrationBean<IdempotencyFilter> registration;

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
  void post_sameKeyTwice_replaysTheFirstResponseByteForByte() {
    int before = controller.executions();

    HttpResponse<byte[]> first = http.post("/orders", order(reference), "Idempotency-Key", key);
    HttpResponse<byte[]> second = http.post("/orders", order(reference), "Idempotency-Key", key);

    assertThat(first.statusCode()).isEqualTo(201);
    assertThat(first.headers().firstValue("Idempotent-Replayed")).isEmpty();
    assertThat(second.statusCode()).isEqualTo(201);
    assertThat(second.body()).isEqualTo(first.body());
    assertThat(second.headers().firstValue("Location"))
        .isEqualTo(first.headers().firstValue("Location")).isPresent();
    assertThat(second.headers().firstValue("Content-Type"))
        .isEqualTo(first.headers().firstValue("Content-Type"));
    assertThat(second.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(controller.executions()).isEqualTo(before + 1);
    assertThat(Rows.orders(reference)).isEqualTo(1);
  }

  @Test
  void post_sameKeyDifferentBody_is422KeyReusedWithoutRunningTheHandler() {
    http.post("/orders", order(reference), "Idempotency-Key", key);
    int before = controller.executions();

    HttpResponse<byte[]> other = http.post("/orders", order("other-" + reference),
        "Idempotency-Key", key);

    assertThat(other.statusCode()).isEqualTo(422);
    assertThat(other.headers().firstValue("Content-Type")).hasValue("application/problem+json");
    assertThat(text(other)).contains("urn:idemkey:problem:key-reused");
    assertThat(controller.executions()).isEqualTo(before);
  }

  @Test
  void post_duplicateWhileTheFirstRuns_is409InProgress() {
    int before = controller.executions();
    CompletableFuture<HttpResponse<byte[]>> first = CompletableFuture.supplyAsync(
        () -> http.post("/orders?delayMs=1500", order(reference), "Idempotency-Key", key));
    Awaitility.await().atMost(Duration.ofSeconds(10))
        .until(() -> controller.executions() == before + 1);

    HttpResponse<byte[]> duplicate =
        http.post("/orders?delayMs=1500", order(reference), "Idempotency-Key", key);

    assertThat(duplicate.statusCode()).isEqualTo(409);
    assertThat(duplicate.headers().firstValue("Retry-After")).isPresent();
    assertThat(text(duplicate)).contains("urn:idemkey:problem:in-progress");
    assertThat(first.join().statusCode()).isEqualTo(201);
    assertThat(controller.executions()).isEqualTo(before + 1);
  }

  @Test
  void post_handlerAnswers500_keyIsReleasedAndTheRetryRunsAgain() {
    int before = controller.executions();

    HttpResponse<byte[]> first =
        http.post("/orders?fail=after-write", order(reference), "Idempotency-Key", key);
    HttpResponse<byte[]> retry =
        http.post("/orders?fail=after-write", order(reference), "Idempotency-Key", key);

    assertThat(first.statusCode()).isEqualTo(500);
    assertThat(retry.statusCode()).isEqualTo(500);
    assertThat(retry.headers().firstValue("Idempotent-Replayed")).isEmpty();
    assertThat(controller.executions()).isEqualTo(before + 2);
    // Not transactional: Spring committed each run's writes before the 500.
    assertThat(Rows.orders(reference)).isEqualTo(2);
  }

  @Test
  void post_withoutKey_passesThroughUntouched() {
    int before = controller.executions();

    http.post("/orders", order(reference));
    http.post("/orders", order(reference));

    assertThat(controller.executions()).isEqualTo(before + 2);
    assertThat(Rows.orders(reference)).isEqualTo(2);
  }

  @Test
  void metrics_executedReplayedAndMismatch_countedByOutcome() throws Exception {
    double executed = count("executed");
    double replayed = count("replayed");
    double mismatch = count("fingerprint_mismatch");

    http.post("/orders", order(reference), "Idempotency-Key", key);
    http.post("/orders", order(reference), "Idempotency-Key", key);
    http.post("/orders", order("x" + reference), "Idempotency-Key", key);

    assertThat(awaitCount("executed", executed + 1)).isEqualTo(executed + 1);
    assertThat(awaitCount("replayed", replayed + 1)).isEqualTo(replayed + 1);
    assertThat(awaitCount("fingerprint_mismatch", mismatch + 1)).isEqualTo(mismatch + 1);
    HttpResponse<byte[]> endpoint = http.get("/actuator/metrics/idempotency.requests");
    assertThat(endpoint.statusCode()).isEqualTo(200);
    assertThat(text(endpoint)).contains("\"outcome\"").contains("fingerprint_mismatch")
        .contains("stale_completion").contains("lease_lost");
  }

  @Test
  void metrics_handlerAnswers500_countedOnceAsReleased() throws Exception {
    double released = count("released");
    double total = settledTotal();

    http.post("/orders?fail=after-write", order(reference), "Idempotency-Key", key);

    assertThat(awaitCount("released", released + 1)).isEqualTo(released + 1);
    assertThat(total()).isEqualTo(total + 1);
  }

  /**
   * A handler that throws releases the key (the retry runs again) and is counted once, as
   * released, as a handler that answers 500 is (issue 25: it was counted under no outcome).
   */
  @Test
  void metrics_handlerThrows_countedOnceAsReleased() throws Exception {
    double released = count("released");
    double total = settledTotal();
    int before = controller.executions();

    for (int i = 0; i < 3; i++) {
      HttpResponse<byte[]> failed =
          http.post("/orders?fail=throw", order(reference), "Idempotency-Key", key);
      assertThat(failed.statusCode()).isEqualTo(500);
    }

    assertThat(controller.executions()).as("released: every try ran").isEqualTo(before + 3);
    assertThat(awaitCount("released", released + 3)).isEqualTo(released + 3);
    assertThat(settledTotal()).isEqualTo(total + 3);
  }

  @Test
  void metrics_invalidKey_countedOnceAsBadRequest() throws Exception {
    double badRequest = count("bad_request");
    double total = settledTotal();

    HttpResponse<byte[]> invalid =
        http.post("/orders", order(reference), "Idempotency-Key", "k".repeat(256));

    assertThat(invalid.statusCode()).isEqualTo(400);
    assertThat(awaitCount("bad_request", badRequest + 1)).isEqualTo(badRequest + 1);
    assertThat(total()).isEqualTo(total + 1);
  }

  @Test
  void metrics_duplicateWhileTheFirstRuns_countedAsInProgress() throws Exception {
    double inProgress = count("in_progress");
    CompletableFuture<HttpResponse<byte[]>> first = CompletableFuture.supplyAsync(
        () -> http.post("/orders?delayMs=1500", order(reference), "Idempotency-Key", key));
    Awaitility.await().atMost(Duration.ofSeconds(10))
        .until(() -> Rows.orders(reference) == 1);

    HttpResponse<byte[]> duplicate =
        http.post("/orders?delayMs=1500", order(reference), "Idempotency-Key", key);

    assertThat(duplicate.statusCode()).isEqualTo(409);
    assertThat(awaitCount("in_progress", inProgress + 1)).isEqualTo(inProgress + 1);
    first.join();
  }

  @Test
  void health_databaseUp_idempotencyComponentIsUp() {
    HttpResponse<byte[]> health = http.get("/actuator/health");

    String json = text(health);
    assertThat(JsonPath.<String>read(json, "$.components.idempotency.status")).isEqualTo("UP");
    assertThat(JsonPath.<String>read(json, "$.components.idempotency.details.table"))
        .isEqualTo("public.idempotency_keys");
  }

  @Test
  void registration_defaults_everyPathAfterSpringSecurity() {
    assertThat(registration.getUrlPatterns()).containsExactly("/*");
    assertThat(registration.getOrder()).isEqualTo(-50);
    assertThat(registration.getFilter()).isNotNull();
  }

  @Test
  void registration_asyncHandlers_mappedForAsyncDispatchesToo() {
    // Spring MVC writes a DeferredResult's or a Callable's response during an ASYNC dispatch:
    // mapped for REQUEST only (Boot's default for a plain Filter), the filter never saw it.
    assertThat(registration.determineDispatcherTypes())
        .containsExactlyInAnyOrder(DispatcherType.REQUEST, DispatcherType.ASYNC);
    assertThat(registration.isAsyncSupported()).isTrue();
  }

  /** Every request counted, whatever its outcome (steps have a meter of their own). */
  private double total() {
    return meters.get("idempotency.requests").timers().stream()
        .mapToDouble(timer -> timer.count()).sum();
  }

  /**
   * The total once no count has moved for 200 ms: an earlier test's last outcome may still be on
   * its way (it is reported after the response is sent).
   */
  private double settledTotal() throws InterruptedException {
    double total = total();
    for (int i = 0; i < 50; i++) {
      Thread.sleep(200);
      double now = total();
      if (now == total) {
        return total;
      }
      total = now;
    }
    return total;
  }

  private double count(String outcome) {
    return meters.get("idempotency.requests").tag("outcome", outcome).timer().count();
  }

  /**
   * The count once it reaches {@code expected}, or after two seconds: the filter reports an
   * outcome after the response is sent, so the client may read the response first.
   */
  private double awaitCount(String outcome, double expected) throws InterruptedException {
    for (int i = 0; i < 100 && count(outcome) < expected; i++) {
      Thread.sleep(20);
    }
    return count(outcome);
  }
}
