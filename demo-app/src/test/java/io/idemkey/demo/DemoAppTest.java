package io.idemkey.demo;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.store.TestDatabase;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** SPEC §11 over HTTP, on two demo nodes in this JVM sharing one PostgreSQL. */
class DemoAppTest {

  static DemoApp nodeA;
  static DemoApp nodeB;
  final HttpClient client = HttpClient.newHttpClient();

  @BeforeAll
  static void start() throws Exception {
    nodeA = DemoApp.start(0, TestDatabase.jdbcUrl(), TestDatabase.user(), TestDatabase.password());
    nodeB = DemoApp.start(0, TestDatabase.jdbcUrl(), TestDatabase.user(), TestDatabase.password());
  }

  @AfterAll
  static void stop() {
    nodeA.close();
    nodeB.close();
  }

  HttpResponse<String> post(DemoApp node, String path, String key, String body, String... headers)
      throws Exception {
    HttpRequest.Builder request =
        HttpRequest.newBuilder(URI.create("http://localhost:" + node.port() + path))
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(body));
    if (key != null) {
      request.header("Idempotency-Key", key);
    }
    for (int i = 0; i < headers.length; i += 2) {
      request.header(headers[i], headers[i + 1]);
    }
    return client.send(request.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
  }

  HttpResponse<String> get(DemoApp node, String path) throws Exception {
    return client.send(
        HttpRequest.newBuilder(URI.create("http://localhost:" + node.port() + path)).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  long payments() throws Exception {
    return counted("payments");
  }

  /** A count of {@code GET /stats}: {@code payments}, {@code charges}... */
  long counted(String name) throws Exception {
    Matcher count =
        Pattern.compile("\"" + name + "\":(\\d+)").matcher(get(nodeA, "/stats").body());
    assertThat(count.find()).isTrue();
    return Long.parseLong(count.group(1));
  }

  static String key() {
    return UUID.randomUUID().toString();
  }

  static final String PAYMENT = "{\"amount\": 1250, \"currency\": \"EUR\"}";

  @Test
  void payment_sentTwice_createdOnceAndReplayed() throws Exception {
    long before = payments();
    String key = key();

    HttpResponse<String> first = post(nodeA, "/payments", key, PAYMENT);
    HttpResponse<String> second = post(nodeB, "/payments", key, PAYMENT);

    assertThat(first.statusCode()).isEqualTo(201);
    assertThat(first.body()).matches(
        "\\{\"id\":\\d+,\"amount\":1250,\"currency\":\"EUR\",\"status\":\"accepted\"}");
    assertThat(first.headers().firstValue("Location").orElseThrow()).startsWith("/payments/");
    assertThat(second.statusCode()).isEqualTo(201);
    assertThat(second.body()).isEqualTo(first.body());
    assertThat(second.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(payments()).isEqualTo(before + 1);
    String location = first.headers().firstValue("Location").orElseThrow();
    assertThat(get(nodeB, location).body()).isEqualTo(first.body());
    assertThat(get(nodeB, "/payments/999999999").statusCode()).isEqualTo(404);
  }

  /** Regression: paths under /payments reached the handler past the filter (two payments). */
  @ParameterizedTest
  @ValueSource(strings = {"/payments/", "/payments/x", "/payments/a/b"})
  void pathUnderPayments_isCoveredByTheFilter(String path) throws Exception {
    assertThat(post(nodeA, path, null, PAYMENT).body())
        .contains("urn:idemkey:problem:missing-key");
    long before = payments();
    String key = key();

    HttpResponse<String> first = post(nodeA, path, key, PAYMENT);
    HttpResponse<String> second = post(nodeB, path, key, PAYMENT);

    assertThat(second.statusCode()).isEqualTo(first.statusCode());
    assertThat(second.body()).isEqualTo(first.body());
    assertThat(second.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(payments()).isLessThanOrEqualTo(before + 1);
  }

  @Test
  void payment_withoutKey_is400_differentBodySameKey_is422() throws Exception {
    HttpResponse<String> missing = post(nodeA, "/payments", null, PAYMENT);
    assertThat(missing.statusCode()).isEqualTo(400);
    assertThat(missing.body()).contains("urn:idemkey:problem:missing-key");

    String key = key();
    post(nodeA, "/payments", key, PAYMENT);
    HttpResponse<String> reused =
        post(nodeA, "/payments", key, "{\"amount\": 999, \"currency\": \"EUR\"}");
    assertThat(reused.statusCode()).isEqualTo(422);
    assertThat(reused.body()).contains("urn:idemkey:problem:key-reused");
  }

  @Test
  void invalidPayment_is400ProblemStoredAndReplayed() throws Exception {
    long before = payments();
    for (String bad : List.of("{\"amount\": 0, \"currency\": \"EUR\"}",
        "{\"amount\": 5, \"currency\": \"EURO\"}", "not json", "{\"amount\": 5}")) {
      String key = key();
      HttpResponse<String> first = post(nodeA, "/payments", key, bad);
      HttpResponse<String> again = post(nodeA, "/payments", key, bad);
      assertThat(first.statusCode()).as(bad).isEqualTo(400);
      assertThat(first.headers().firstValue("Content-Type")).hasValue("application/problem+json");
      assertThat(again.headers().firstValue("Idempotent-Replayed")).hasValue("true");
      assertThat(again.body()).isEqualTo(first.body());
    }
    assertThat(payments()).isEqualTo(before);
  }

  /** Regression (issue 23): an amount in Arabic-Indic digits was accepted as 1250 (201). */
  @Test
  void payment_amountInArabicIndicDigits_is400Problem_nothingCharged() throws Exception {
    long before = payments();
    HttpResponse<String> answer = post(nodeA, "/payments", key(),
        "{\"amount\": \u0661\u0662\u0665\u0660, \"currency\": \"EUR\"}");
    assertThat(answer.statusCode()).isEqualTo(400);
    assertThat(answer.headers().firstValue("Content-Type")).hasValue("application/problem+json");
    assertThat(payments()).isEqualTo(before);
  }

  /**
   * Regression (issue 23): {@code processorDelayMs=1%201} was a generic 500 (the value went into
   * the processor's URL unchecked); a malformed test delay is a 400 problem like a bad delayMs.
   */
  @ParameterizedTest
  @ValueSource(strings = {"1%201", "abc", "-5", "1.5", "%D9%A1", "1%26fail%3Dtrue", "",
      "99999999999999999999"})
  void payment_malformedProcessorDelayMs_is400ProblemLikeABadDelayMs(String delay)
      throws Exception {
    long before = payments();
    HttpResponse<String> answer =
        post(nodeA, "/payments?processorDelayMs=" + delay, key(), PAYMENT);
    assertThat(answer.statusCode()).as(delay).isEqualTo(400);
    assertThat(answer.headers().firstValue("Content-Type")).hasValue("application/problem+json");
    assertThat(answer.body()).contains("processorDelayMs");
    HttpResponse<String> badDelay = post(nodeA, "/payments?delayMs=" + delay, key(), PAYMENT);
    assertThat(badDelay.statusCode()).as(delay).isEqualTo(400);
    assertThat(badDelay.body()).contains("delayMs");
    assertThat(payments()).isEqualTo(before);
  }

  /**
   * Regression (issue 23): after a processor call that timed out, the 503 said "the payment could
   * not be charged now", and the charge landed 3 s later. It says that the outcome is unknown and
   * to retry with the same key; that retry, on another node, makes one payment and one charge.
   */
  @Test
  void payment_processorCallTimedOut_is503OutcomeUnknown_retryWithTheSameKeyPaysOnce()
      throws Exception {
    long payments = payments();
    long charges = counted("charges");
    String key = key();
    // The processor answers 3 s after the payment gave up on it (ProcessorClient.TIMEOUT).
    String slow = "/payments?processorDelayMs=" + (ProcessorClient.TIMEOUT.toMillis() + 3000);

    HttpResponse<String> first = post(nodeA, slow, key, PAYMENT);

    assertThat(first.statusCode()).isEqualTo(503);
    assertThat(first.headers().firstValue("Content-Type")).hasValue("application/problem+json");
    assertThat(first.body()).contains("unknown", "retry with the same Idempotency-Key")
        .doesNotContain("could not be charged", "not charged", "did not charge");

    HttpResponse<String> retry = post(nodeB, slow, key, PAYMENT);

    assertThat(retry.statusCode()).as(retry.body()).isEqualTo(201);
    assertThat(payments()).isEqualTo(payments + 1);
    assertThat(counted("charges")).isEqualTo(charges + 1);
  }

  @Test
  void fail_is500_notStored_retryRunsAgain() throws Exception {
    long before = payments();
    String key = key();

    assertThat(post(nodeA, "/payments?fail=true", key, PAYMENT).statusCode()).isEqualTo(500);
    assertThat(post(nodeA, "/payments", key, PAYMENT).statusCode()).isEqualTo(201);
    assertThat(payments()).isEqualTo(before + 1);
  }

  @Test
  void bearerPrincipals_sameKey_eachGetsTheirOwnPayment() throws Exception {
    long before = payments();
    String key = key();

    HttpResponse<String> alice = post(nodeA, "/payments", key, PAYMENT, "Authorization", "Bearer alice");
    HttpResponse<String> bob = post(nodeA, "/payments", key, PAYMENT, "Authorization", "Bearer bob");

    assertThat(alice.body()).isNotEqualTo(bob.body());
    assertThat(payments()).isEqualTo(before + 2);
  }

  @Test
  void baselinesAndHealth_answerWithoutTheFilter() throws Exception {
    assertThat(post(nodeA, "/bare/payments", null, PAYMENT).statusCode()).isEqualTo(201);
    HttpResponse<String> fixed = post(nodeA, "/bare/static", null, PAYMENT);
    assertThat(fixed.statusCode()).isEqualTo(201);
    assertThat(fixed.body()).contains("\"amount\":1250");
    HttpResponse<String> health = get(nodeA, "/health");
    assertThat(health.statusCode()).isEqualTo(200);
    // One embedded PostgreSQL, no standby: SPEC §14's health says so.
    assertThat(health.body()).contains("\"replication\":\"none\"");
    assertThat(get(nodeA, "/stats").body())
        .matches("\\{\"payments\":\\d+,\"executions\":\\d+,\"charges\":\\d+,"
            + "\"processorCalls\":\\d+,\"counted\":\\{.*}}")
        .contains("\"executions\":\"handler runs in this process since it started\"");
  }

  @Test
  void oneKeyOnTwoNodesAtOnce_exactlyOnePayment() throws Exception {
    long before = payments();
    String key = key();
    int threads = 16;
    CyclicBarrier barrier = new CyclicBarrier(threads);
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      List<Future<HttpResponse<String>>> futures = new ArrayList<>();
      for (int i = 0; i < threads; i++) {
        DemoApp node = i % 2 == 0 ? nodeA : nodeB;
        futures.add(pool.submit(() -> {
          barrier.await();
          return post(node, "/payments?delayMs=500", key, PAYMENT);
        }));
      }
      String created = null;
      for (Future<HttpResponse<String>> future : futures) {
        HttpResponse<String> response = future.get();
        assertThat(response.statusCode()).isIn(201, 409);
        if (response.statusCode() == 201) {
          if (created == null) {
            created = response.body();
          }
          assertThat(response.body()).isEqualTo(created);
        }
      }
    } finally {
      pool.shutdownNow();
    }
    assertThat(payments()).isEqualTo(before + 1);
  }
}
