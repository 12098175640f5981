package io.idemkey.frameworks;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.http.HttpResponse;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * JAX-RS on Jersey 4 (its servlet, HK2) behind the filter: a synchronous resource and an
 * {@code @Suspended AsyncResponse} resource are run once and replayed byte for byte (SPEC §6),
 * refused with 422 for another body under the same key (SPEC §4), and a 5xx releases the key.
 */
abstract class JerseyContract extends FrameworkContract {

  static final String ORDER = "{\"amount\":1250,\"currency\":\"EUR\"}";
  static final String OTHER_ORDER = "{\"amount\":9999,\"currency\":\"EUR\"}";

  @BeforeEach
  void startJersey() throws Exception {
    start(new org.glassfish.jersey.servlet.ServletContainer(JerseyApp.application(executions)), "/*");
  }

  /** Sends the same request twice with one key; asserts the replay and one run of the handler. */
  HttpResponse<byte[]> assertRunsOnceAndReplays(String endpoint) throws Exception {
    String key = key();
    HttpResponse<byte[]> first = post("/jaxrs/" + endpoint, key, ORDER);
    HttpResponse<byte[]> second = post("/jaxrs/" + endpoint, key, ORDER);

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
    HttpResponse<byte[]> first = post("/jaxrs/" + endpoint, key, ORDER);
    HttpResponse<byte[]> other = post("/jaxrs/" + endpoint, key, OTHER_ORDER);

    assertThat(first.statusCode()).isEqualTo(status);
    assertKeyReused(other);
    assertThat(executions.of(endpoint)).isEqualTo(1);
  }

  /** Sends the same request twice with one key; asserts that both ran and neither is a replay. */
  void assertReleased(String endpoint, int status) throws Exception {
    String key = key();
    HttpResponse<byte[]> first = post("/jaxrs/" + endpoint, key, ORDER);
    HttpResponse<byte[]> retry = post("/jaxrs/" + endpoint, key, ORDER);

    assertThat(first.statusCode()).isEqualTo(status);
    assertThat(text(first)).endsWith("(run 1)");
    assertThat(retry.statusCode()).isEqualTo(status);
    assertThat(text(retry)).endsWith("(run 2)");
    assertThat(retry.headers().firstValue("Idempotent-Replayed")).isEmpty();
    assertThat(executions.of(endpoint)).isEqualTo(2);
  }

  @Test
  void syncResource_duplicate_replays201LocationCharsetAndRunsOnce() throws Exception {
    HttpResponse<byte[]> first = assertRunsOnceAndReplays("orders");

    assertThat(first.statusCode()).isEqualTo(201);
    assertThat(first.headers().firstValue("Location").orElseThrow())
        .endsWith("/jaxrs/orders/ord-1");
    assertThat(first.headers().firstValue("X-Run")).hasValue("1");
    assertThat(first.headers().firstValue("Content-Type").orElseThrow())
        .isEqualToIgnoringCase("application/json;charset=UTF-8");
    assertThat(text(first)).isEqualTo("{\"id\":\"ord-1\",\"note\":\"caf\u00e9 \u20ac\",\"run\":1}");
  }

  @Test
  void syncResource_otherBodySameKey_is422KeyReused() throws Exception {
    assertOtherBodyRefused("orders", 201);
  }

  @Test
  void suspendedAsyncResponse_duplicate_replays202AndRunsOnce() throws Exception {
    HttpResponse<byte[]> first = assertRunsOnceAndReplays("async");

    assertThat(first.statusCode()).isEqualTo(202);
    assertThat(first.headers().firstValue("X-Run")).hasValue("1");
    assertThat(text(first)).isEqualTo("accepted \u20ac run 1");
  }

  @Test
  void suspendedAsyncResponse_otherBodySameKey_is422KeyReused() throws Exception {
    assertOtherBodyRefused("async", 202);
  }

  @Test
  void webApplicationException400_duplicate_replaysProblemAndRunsOnce() throws Exception {
    HttpResponse<byte[]> first = assertRunsOnceAndReplays("invalid");

    assertThat(first.statusCode()).isEqualTo(400);
    assertThat(first.headers().firstValue("Content-Type")).hasValue("application/problem+json");
    assertThat(first.headers().firstValue("X-Error")).hasValue("invalid");
  }

  @Test
  void exceptionMapper500_retrySameKey_releasedAndRunsAgain() throws Exception {
    assertReleased("broken", 500);
  }

  @Test
  void suspendedAsyncResponse503_retrySameKey_releasedAndRunsAgain() throws Exception {
    assertReleased("async-unavailable", 503);
  }
}
