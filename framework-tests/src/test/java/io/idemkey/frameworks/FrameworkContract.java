package io.idemkey.frameworks;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.filter.IdempotencyConfig;
import io.idemkey.filter.IdempotencyFilter;
import io.idemkey.filter.ServletContainer;
import io.idemkey.store.StoreBuilder;
import jakarta.servlet.Filter;
import jakarta.servlet.Servlet;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.AfterEach;

/**
 * What every framework test shares: an embedded container with the idemkey filter in front of a
 * framework's servlet, an HTTP client, and the assertions of SPEC §4 and §6 over real HTTP.
 */
abstract class FrameworkContract {

  /**
   * Headers that the container or the connection sets, not the handler: not compared between a
   * response and its replay. The body bytes are compared instead of the length (a first response
   * may be chunked where its replay has a Content-Length).
   */
  private static final Set<String> NOT_THE_HANDLERS =
      Set.of("date", "content-length", "transfer-encoding", "connection", "keep-alive");

  final HttpClient client =
      HttpClient.newBuilder()
          .version(HttpClient.Version.HTTP_1_1)
          .connectTimeout(Duration.ofSeconds(5))
          .build();
  final Executions executions = new Executions();
  ServletContainer container;

  abstract ServletContainer newContainer();

  @AfterEach
  void stopContainer() throws Exception {
    if (container != null) {
      container.close();
    }
  }

  /** Starts a container with the filter (defaults, in-memory store) in front of {@code servlet}. */
  void start(Servlet servlet, String mapping) throws Exception {
    start(servlet, mapping, filter -> filter);
  }

  /** As {@link #start(Servlet, String)}, the filter seen through {@code inFront}. */
  void start(Servlet servlet, String mapping, UnaryOperator<Filter> inFront) throws Exception {
    IdempotencyConfig config =
        IdempotencyConfig.builder().store(IdempotencyConfig.StoreType.MEMORY).build();
    IdempotencyFilter filter =
        IdempotencyFilter.builder().config(config).store(StoreBuilder.memory().build()).build();
    container = newContainer();
    container.start(inFront.apply(filter), servlet, mapping);
  }

  HttpResponse<byte[]> post(String path, String key, String json)
      throws IOException, InterruptedException {
    HttpRequest.Builder request =
        HttpRequest.newBuilder(URI.create(container.uri() + path))
            .timeout(Duration.ofSeconds(15))
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(json));
    if (key != null) {
      request.header("Idempotency-Key", key);
    }
    return client.send(request.build(), HttpResponse.BodyHandlers.ofByteArray());
  }

  static String key() {
    return UUID.randomUUID().toString();
  }

  static String text(HttpResponse<byte[]> response) {
    return new String(response.body(), StandardCharsets.UTF_8);
  }

  /** The response's headers that the handler (or its framework) set, names in lower case. */
  static Map<String, List<String>> handlerHeaders(HttpResponse<byte[]> response) {
    Map<String, List<String>> headers = new TreeMap<>();
    response.headers().map().forEach((name, values) -> {
      String lower = name.toLowerCase(java.util.Locale.ROOT);
      if (!NOT_THE_HANDLERS.contains(lower)) {
        headers.put(lower, values);
      }
    });
    return headers;
  }

  /**
   * SPEC §6: {@code replay} is {@code first} again, byte for byte: the status, every header the
   * handler set (Content-Type with its charset included), the body bytes; plus the replay marker,
   * which the first response does not have.
   */
  static void assertReplayOf(HttpResponse<byte[]> replay, HttpResponse<byte[]> first) {
    assertThat(first.headers().firstValue("Idempotent-Replayed")).isEmpty();
    assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(replay.statusCode()).isEqualTo(first.statusCode());
    assertThat(replay.body()).isEqualTo(first.body());
    Map<String, List<String>> replayed = handlerHeaders(replay);
    replayed.remove("idempotent-replayed");
    assertThat(replayed).isEqualTo(handlerHeaders(first));
  }

  /** SPEC §4 and §9: a 422 problem of type key-reused. */
  static void assertKeyReused(HttpResponse<byte[]> response) {
    assertThat(response.statusCode()).isEqualTo(422);
    assertThat(response.headers().firstValue("Content-Type")).hasValue("application/problem+json");
    assertThat(text(response))
        .contains("\"type\":\"urn:idemkey:problem:key-reused\"")
        .contains("\"status\":422");
    assertThat(response.headers().firstValue("Idempotent-Replayed")).isEmpty();
  }
}
