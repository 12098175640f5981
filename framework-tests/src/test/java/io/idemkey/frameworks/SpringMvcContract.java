package io.idemkey.frameworks;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.springframework.web.context.support.AnnotationConfigWebApplicationContext;
import org.springframework.web.servlet.DispatcherServlet;

/**
 * Spring MVC 7 (a DispatcherServlet over an annotation-configured context, no Spring Boot) behind
 * the filter: each way a controller can answer is run once and replayed byte for byte (SPEC §6),
 * refused with 422 for another body under the same key (SPEC §4), or released on a 5xx.
 */
abstract class SpringMvcContract extends FrameworkContract {

  static final String ORDER = "{\"amount\":1250,\"currency\":\"EUR\"}";
  static final String OTHER_ORDER = "{\"amount\":9999,\"currency\":\"EUR\"}";

  @BeforeEach
  void startSpring() throws Exception {
    AnnotationConfigWebApplicationContext context = new AnnotationConfigWebApplicationContext();
    context.register(SpringMvcApp.class);
    context.addBeanFactoryPostProcessor(
        beanFactory -> beanFactory.registerSingleton("executions", executions));
    start(new DispatcherServlet(context), "/");
  }

  /** Sends the same request twice with one key; asserts the replay and one run of the handler. */
  HttpResponse<byte[]> assertRunsOnceAndReplays(String endpoint) throws Exception {
    String key = key();
    HttpResponse<byte[]> first = post("/spring/" + endpoint, key, ORDER);
    HttpResponse<byte[]> second = post("/spring/" + endpoint, key, ORDER);

    assertReplayOf(second, first);
    assertThat(executions.of(endpoint)).isEqualTo(1);
    return first;
  }

  /**
   * Sends another body under a key already used for a first response of {@code status}; asserts
   * 422 and no second run.
   */
  void assertOtherBodyRefused(String endpoint, int status) throws Exception {
    String key = key();
    HttpResponse<byte[]> first = post("/spring/" + endpoint, key, ORDER);
    HttpResponse<byte[]> other = post("/spring/" + endpoint, key, OTHER_ORDER);

    assertThat(first.statusCode()).isEqualTo(status);
    assertKeyReused(other);
    assertThat(executions.of(endpoint)).isEqualTo(1);
  }

  @Test
  void restControllerJson_duplicate_replaysJsonAndRunsOnce() throws Exception {
    HttpResponse<byte[]> first = assertRunsOnceAndReplays("json");

    assertThat(first.statusCode()).isEqualTo(200);
    assertThat(first.headers().firstValue("Content-Type")).hasValue("application/json");
    assertThat(text(first))
        .isEqualTo("{\"id\":\"ord-1\",\"amount\":1250,\"currency\":\"EUR\",\"run\":1}");
  }

  @Test
  void restControllerJson_otherBodySameKey_is422KeyReused() throws Exception {
    assertOtherBodyRefused("json", 200);
  }

  @Test
  void stringBodyWithCharset_duplicate_replaysLatin1Bytes() throws Exception {
    HttpResponse<byte[]> first = assertRunsOnceAndReplays("text");

    assertThat(first.statusCode()).isEqualTo(200);
    // Jetty spells the charset in lower case, Tomcat as Spring gave it; the replay is compared
    // with the first response exactly.
    assertThat(first.headers().firstValue("Content-Type").orElseThrow())
        .isEqualToIgnoringCase("text/plain;charset=ISO-8859-1");
    assertThat(first.body()).isEqualTo("caf\u00e9 run 1".getBytes(StandardCharsets.ISO_8859_1));
  }

  @Test
  void responseEntityCreated_duplicate_replays201LocationAndHeaders() throws Exception {
    HttpResponse<byte[]> first = assertRunsOnceAndReplays("created");

    assertThat(first.statusCode()).isEqualTo(201);
    assertThat(first.headers().firstValue("Location")).hasValue("/spring/orders/ord-1");
    assertThat(first.headers().firstValue("X-Run")).hasValue("1");
    assertThat(first.headers().firstValue("Cache-Control")).hasValue("no-store");
  }

  @Test
  void responseEntityCreated_otherBodySameKey_is422KeyReused() throws Exception {
    assertOtherBodyRefused("created", 201);
  }

  // Spring MVC answers a DeferredResult, a Callable and a StreamingResponseBody with
  // startAsync() and then AsyncContext.dispatch(): the response is written during the ASYNC
  // dispatch back through the filter, and stored and sent when that dispatch returns.
  @Test
  void deferredResult_duplicate_replays202AndRunsOnce() throws Exception {
    HttpResponse<byte[]> first = assertRunsOnceAndReplays("deferred");

    assertThat(first.statusCode()).isEqualTo(202);
    assertThat(first.headers().firstValue("X-Run")).hasValue("1");
    assertThat(text(first)).contains("\"run\":1");
  }

  @Test
  void deferredResult_otherBodySameKey_is422KeyReused() throws Exception {
    assertOtherBodyRefused("deferred", 202);
  }

  @Test
  void deferredResult503_retrySameKey_releasedAndRunsAgain() throws Exception {
    String key = key();
    HttpResponse<byte[]> first = post("/spring/deferred-unavailable", key, ORDER);
    HttpResponse<byte[]> retry = post("/spring/deferred-unavailable", key, ORDER);

    assertThat(first.statusCode()).isEqualTo(503);
    assertThat(text(first)).isEqualTo("try again (run 1)");
    assertThat(retry.statusCode()).isEqualTo(503);
    assertThat(text(retry)).isEqualTo("try again (run 2)");
    assertThat(retry.headers().firstValue("Idempotent-Replayed")).isEmpty();
    assertThat(executions.of("deferred-unavailable")).isEqualTo(2);
  }

  @Test
  void callable_duplicate_replays201AndRunsOnce() throws Exception {
    HttpResponse<byte[]> first = assertRunsOnceAndReplays("callable");

    assertThat(first.statusCode()).isEqualTo(201);
    assertThat(first.headers().firstValue("Content-Type").orElseThrow())
        .isEqualToIgnoringCase("text/plain;charset=UTF-8");
    assertThat(text(first)).isEqualTo("called \u20ac run 1");
  }

  @Test
  void callable_otherBodySameKey_is422KeyReused() throws Exception {
    assertOtherBodyRefused("callable", 201);
  }

  @Test
  void streamingResponseBody_duplicate_replaysEveryChunkAndRunsOnce() throws Exception {
    HttpResponse<byte[]> first = assertRunsOnceAndReplays("streaming");

    assertThat(first.statusCode()).isEqualTo(200);
    assertThat(text(first)).isEqualTo(
        "chunk 1 of run 1 \u20ac\nchunk 2 of run 1 \u20ac\nchunk 3 of run 1 \u20ac\n");
  }

  @Test
  void streamingResponseBody_otherBodySameKey_is422KeyReused() throws Exception {
    assertOtherBodyRefused("streaming", 200);
  }

  @Test
  void exceptionHandler400_duplicate_replaysProblemAndRunsOnce() throws Exception {
    HttpResponse<byte[]> first = assertRunsOnceAndReplays("invalid");

    assertThat(first.statusCode()).isEqualTo(400);
    assertThat(first.headers().firstValue("Content-Type")).hasValue("application/problem+json");
    assertThat(first.headers().firstValue("X-Error")).hasValue("invalid");
    assertThat(text(first)).contains("amount must be positive (run 1)");
  }

  @Test
  void exceptionHandler400_otherBodySameKey_is422KeyReused() throws Exception {
    assertOtherBodyRefused("invalid", 400);
  }

  @Test
  void exceptionHandler500_retrySameKey_releasedAndRunsAgain() throws Exception {
    String key = key();
    HttpResponse<byte[]> first = post("/spring/broken", key, ORDER);
    HttpResponse<byte[]> retry = post("/spring/broken", key, ORDER);

    assertThat(first.statusCode()).isEqualTo(500);
    assertThat(text(first)).isEqualTo("the ledger did not answer (run 1)");
    assertThat(retry.statusCode()).isEqualTo(500);
    assertThat(text(retry)).isEqualTo("the ledger did not answer (run 2)");
    assertThat(retry.headers().firstValue("Idempotent-Replayed")).isEmpty();
    assertThat(executions.of("broken")).isEqualTo(2);
  }
}
