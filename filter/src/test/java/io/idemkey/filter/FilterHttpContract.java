package io.idemkey.filter;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.store.ForwardingStore;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.StoreBuilder;
import io.idemkey.store.StoredResponse;
import io.idemkey.store.TestDatabase;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * SPEC.md rules over real HTTP. Each container runs this suite through a subclass, so every rule
 * is seen on Jetty 12 and on Tomcat 11.
 */
abstract class FilterHttpContract {

  final HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
  final TestHandler handler = new TestHandler();
  final List<IdempotencyListener.Event> events = new CopyOnWriteArrayList<>();
  ServletContainer container;

  abstract ServletContainer newContainer();

  @AfterEach
  void stop() throws Exception {
    if (container != null) {
      container.close();
    }
  }

  void start(UnaryOperator<IdempotencyConfig.Builder> configure) throws Exception {
    IdempotencyConfig config =
        configure.apply(IdempotencyConfig.builder().store(IdempotencyConfig.StoreType.MEMORY))
            .build();
    start(IdempotencyFilter.builder()
        .config(config)
        .store(config.storeBuilder().build())
        .listener(events::add)
        .build());
  }

  void start(IdempotencyFilter filter) throws Exception {
    container = newContainer();
    container.start(filter, handler);
  }

  HttpResponse<byte[]> send(String method, String path, String key, String body)
      throws IOException, InterruptedException {
    return send(method, path, key, body, "application/json");
  }

  HttpResponse<byte[]> send(String method, String path, String key, String body, String type,
      String... headers) throws IOException, InterruptedException {
    HttpRequest.Builder request =
        HttpRequest.newBuilder(URI.create(container.uri() + path))
            .timeout(Duration.ofSeconds(30))
            .header("Content-Type", type)
            .method(method, HttpRequest.BodyPublishers.ofString(body));
    if (key != null) {
      request.header("Idempotency-Key", key);
    }
    for (int i = 0; i < headers.length; i += 2) {
      request.header(headers[i], headers[i + 1]);
    }
    return client.send(request.build(), HttpResponse.BodyHandlers.ofByteArray());
  }

  /**
   * The events, once {@code count} have arrived: the listener hears of a request after its
   * response is sent, so the client may read the response first.
   */
  List<IdempotencyListener.Event> awaitEvents(int count) throws InterruptedException {
    for (int i = 0; i < 100 && events.size() < count; i++) {
      Thread.sleep(20);
    }
    return events;
  }

  static String text(HttpResponse<byte[]> response) {
    return new String(response.body(), java.nio.charset.StandardCharsets.UTF_8);
  }

  static String key() {
    return UUID.randomUUID().toString();
  }

  static void assertProblem(HttpResponse<byte[]> response, int status, String name) {
    assertThat(response.statusCode()).isEqualTo(status);
    assertThat(response.headers().firstValue("Content-Type")).hasValue("application/problem+json");
    assertThat(text(response))
        .contains("\"type\":\"urn:idemkey:problem:" + name + "\"")
        .contains("\"status\":" + status)
        .contains("\"title\":")
        .contains("\"detail\":")
        .doesNotContain("Exception");
  }

  @Test
  void asyncDispatch_responseWrittenOnDispatchIsStoredAndReplayed_keyNotLeftInProgress()
      throws Exception {
    start(c -> c);
    String key = key();

    HttpResponse<byte[]> first = send("POST", "/p?dispatch=true", key, "{}");
    HttpResponse<byte[]> second = send("POST", "/p?dispatch=true", key, "{}");

    assertThat(first.statusCode()).isEqualTo(201);
    assertThat(text(first)).isEqualTo("dispatched run 1");
    assertThat(second.statusCode()).isEqualTo(201);
    assertThat(second.body()).isEqualTo(first.body());
    assertThat(second.headers().firstValue("Content-Type"))
        .isEqualTo(first.headers().firstValue("Content-Type"));
    assertThat(second.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(handler.executions.get()).isEqualTo(1);
    assertThat(awaitEvents(2)).extracting(IdempotencyListener.Event::outcome)
        .contains(IdempotencyListener.Outcome.EXECUTED, IdempotencyListener.Outcome.REPLAYED);
  }

  @Test
  void asyncTimeout_nothingStored_keyReleasedAndTheRetryRunsAgain() throws Exception {
    start(c -> c);
    String key = key();

    HttpResponse<byte[]> first = send("POST", "/p?asyncTimeoutMs=200", key, "{}");
    HttpResponse<byte[]> retry = send("POST", "/p?asyncTimeoutMs=200", key, "{}");

    assertThat(first.statusCode()).isGreaterThanOrEqualTo(500); // the container's own answer
    assertThat(retry.headers().firstValue("Idempotent-Replayed")).isEmpty();
    assertThat(retry.statusCode()).isNotEqualTo(409);
    assertThat(handler.executions).hasValue(2);
  }

  // Regression: the filter's own timeout listener ran first and released the key; the fallback
  // the handler wrote in its onTimeout went into a capture never sent (200, empty body).
  @Test
  void asyncHandlerAnswersInItsOwnTimeoutListener_answerIsStoredAndReplayed() throws Exception {
    start(c -> c);
    String key = key();

    HttpResponse<byte[]> first = send("POST", "/p?fallbackOnTimeoutMs=200", key, "{}");
    HttpResponse<byte[]> retry = send("POST", "/p?fallbackOnTimeoutMs=200", key, "{}");

    assertThat(first.statusCode()).isEqualTo(200);
    assertThat(text(first)).isEqualTo("{\"status\":\"pending\",\"run\":1}");
    assertThat(retry.statusCode()).isEqualTo(200);
    assertThat(retry.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(retry.body()).isEqualTo(first.body());
    assertThat(handler.executions).hasValue(1);
  }

  @Test
  void failOpenWithAsyncHandler_storeUnreachable_handlerAnswersWithoutDeduplication()
      throws Exception {
    IdempotencyConfig config =
        IdempotencyConfig.builder()
            .onStoreFailure(IdempotencyConfig.OnStoreFailure.FAIL_OPEN)
            .store(IdempotencyConfig.StoreType.MEMORY)
            .build();
    start(IdempotencyFilter.builder()
        .config(config)
        .store(StoreBuilder.postgres("jdbc:postgresql://127.0.0.1:1/none", "u", "p")
            .migrate(false).cacheMaxBytes(0).purgeInterval(Duration.ZERO)
            .connectTimeout(Duration.ofMillis(500)).build())
        .listener(events::add)
        .build());

    HttpResponse<byte[]> response = send("POST", "/p?async=true", key(), "{}");

    assertThat(response.statusCode()).isEqualTo(202);
    assertThat(text(response)).isEqualTo("async run 1");
  }

  // Regression: with fail-open, the ASYNC dispatch of a handler run without deduplication came back
  // through the filter as a new request with its body already read: once the store was back, it
  // claimed the key and stored an answer under an empty body's fingerprint, so the client's retry
  // with its real body got 422.
  @Test
  void failOpenThenAsyncDispatch_storeBackMeanwhile_dispatchClaimsNothing_retryRuns()
      throws Exception {
    IdempotencyConfig config = IdempotencyConfig.builder()
        .onStoreFailure(IdempotencyConfig.OnStoreFailure.FAIL_OPEN)
        .store(IdempotencyConfig.StoreType.MEMORY).build();
    java.util.concurrent.atomic.AtomicBoolean away =
        new java.util.concurrent.atomic.AtomicBoolean(true);
    start(IdempotencyFilter.builder().config(config)
        .store(new ForwardingStore(config.storeBuilder().build()) {
          @Override
          public io.idemkey.store.ClaimResult claim(
              IdempotencyKey key, io.idemkey.store.Fingerprint fingerprint) {
            if (away.getAndSet(false)) {
              throw new io.idemkey.store.StoreUnavailableException("test: away", null);
            }
            return super.claim(key, fingerprint);
          }
        }).listener(events::add).build());
    String key = key();

    HttpResponse<byte[]> first = send("POST", "/p?dispatch=true", key, "{\"amount\":1}");
    HttpResponse<byte[]> retry = send("POST", "/p?dispatch=true", key, "{\"amount\":1}");

    assertThat(first.statusCode()).isEqualTo(201);
    assertThat(text(first)).isEqualTo("dispatched run 1");
    assertThat(retry.statusCode()).isEqualTo(201);
    assertThat(text(retry)).isEqualTo("dispatched run 2");
    assertThat(awaitEvents(2)).extracting(IdempotencyListener.Event::outcome)
        .containsExactly(IdempotencyListener.Outcome.FAIL_OPEN,
            IdempotencyListener.Outcome.EXECUTED);
  }

  @Test
  void headersSetByFilterInFront_areNotStored_replayCarriesOnlyTheirNewValues()
      throws Exception {
    IdempotencyConfig config =
        IdempotencyConfig.builder().store(IdempotencyConfig.StoreType.MEMORY).build();
    container = newContainer();
    container.start(
        new HeadersInFront(
            IdempotencyFilter.builder().config(config).store(config.storeBuilder().build()).build()),
        handler);
    String key = key();

    HttpResponse<byte[]> first =
        send("POST", "/payments", key, "{}", "application/json", "Origin", "https://a.example");
    HttpResponse<byte[]> replay =
        send("POST", "/payments", key, "{}", "application/json", "Origin", "https://b.example");

    assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(replay.headers().allValues("Access-Control-Allow-Origin"))
        .containsExactly("https://b.example");
    assertThat(replay.headers().allValues("X-Request-Id")).hasSize(1)
        .doesNotContainAnyElementsOf(first.headers().allValues("X-Request-Id"));
    assertThat(replay.headers().allValues("X-Multi")).containsExactly("one", "two");
    assertThat(replay.body()).isEqualTo(first.body());
  }

  @Test
  void completionThrows_keyIsReleasedNotLeftInProgress() throws Exception {
    IdempotencyConfig config =
        IdempotencyConfig.builder().store(IdempotencyConfig.StoreType.MEMORY).build();
    IdempotencyStore memory = config.storeBuilder().build();
    java.util.concurrent.atomic.AtomicBoolean broken =
        new java.util.concurrent.atomic.AtomicBoolean(true);
    start(IdempotencyFilter.builder()
        .config(config)
        .store(new ForwardingStore(memory) {
          @Override
          public boolean complete(IdempotencyKey key, long token, StoredResponse response) {
            if (broken.getAndSet(false)) {
              throw new IllegalStateException("test: a bug in the completion path");
            }
            return memory.complete(key, token, response);
          }
        })
        .build());
    String key = key();

    assertThat(send("POST", "/payments", key, "{}").statusCode()).isEqualTo(500);
    HttpResponse<byte[]> retry = send("POST", "/payments", key, "{}");

    assertThat(retry.statusCode()).isEqualTo(201);
    assertThat(handler.executions.get()).isEqualTo(2);
  }

  @Test
  void scopeHeaderTwice_is400InvalidScope_handlerNotRun() throws Exception {
    start(c -> c.scope(IdempotencyConfig.Scope.header("X-Tenant")));

    HttpResponse<byte[]> response =
        send("POST", "/payments", key(), "{}", "application/json",
            "X-Tenant", "mine", "X-Tenant", "someone-else");

    assertProblem(response, 400, "invalid-scope");
    assertThat(handler.executions.get()).isZero();
  }

  @Test
  void duplicate_replaysStatusHeadersAndBytes_handlerRunsOnce() throws Exception {
    start(c -> c);
    String key = key();

    HttpResponse<byte[]> first = send("POST", "/payments", key, "{\"amount\":1}");
    HttpResponse<byte[]> second = send("POST", "/payments", key, "{\"amount\":1}");

    assertThat(first.statusCode()).isEqualTo(201);
    assertThat(first.headers().firstValue("Idempotent-Replayed")).isEmpty();
    assertThat(second.statusCode()).isEqualTo(201);
    assertThat(second.body()).isEqualTo(first.body());
    assertThat(second.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(second.headers().firstValue("X-Handler")).hasValue("run 1");
    assertThat(second.headers().allValues("X-Multi")).containsExactly("one", "two");
    assertThat(second.headers().allValues("Server")).hasSizeLessThanOrEqualTo(1);
    assertThat(second.headers().firstValue("Content-Type").orElseThrow()).startsWith("application/json");
    assertThat(handler.executions).hasValue(1);
    assertThat(awaitEvents(2)).extracting(IdempotencyListener.Event::outcome)
        .containsExactly(IdempotencyListener.Outcome.EXECUTED, IdempotencyListener.Outcome.REPLAYED);
  }

  @Test
  void replay_leavesOutSetCookieAndDate_evenWithOtherExclusions() throws Exception {
    start(c -> c.excludeResponseHeaders(List.of("X-Handler")));
    String key = key();
    HttpResponse<byte[]> first = send("POST", "/p", key, "{}");
    HttpResponse<byte[]> second = send("POST", "/p", key, "{}");

    assertThat(first.headers().firstValue("Set-Cookie").orElseThrow()).contains("secret-1");
    assertThat(second.headers().allValues("Set-Cookie")).isEmpty();
    assertThat(second.headers().allValues("X-Handler")).isEmpty();
    assertThat(second.headers().allValues("Date"))
        .doesNotContain("Thu, 01 Jan 2026 00:00:00 GMT");
  }

  @Test
  void uncoveredMethodOrPath_passesThroughEveryTime() throws Exception {
    start(c -> c.excludePaths(List.of("/health/*")));
    String key = key();

    send("PUT", "/p", key, "{}");
    send("PUT", "/p", key, "{}");
    send("POST", "/health/check", key, "{}");
    send("POST", "/health/check", key, "{}");

    assertThat(handler.executions).hasValue(4);
    assertThat(events).isEmpty();
  }

  @Test
  void missingKey_passesThrough_orIs400WhenRequired() throws Exception {
    start(c -> c.includePaths(List.of("/required/*")).required(true));

    assertThat(send("POST", "/free", null, "{}").statusCode()).isEqualTo(201);
    assertProblem(send("POST", "/required/x", null, "{}"), 400, "missing-key");
    assertThat(handler.executions).hasValue(1);
  }

  @Test
  void invalidOrRepeatedKey_is400InvalidKey() throws Exception {
    start(c -> c);

    assertProblem(send("POST", "/p", "a b", "{}"), 400, "invalid-key");
    assertProblem(send("POST", "/p", "\"unterminated", "{}"), 400, "invalid-key");
    assertProblem(send("POST", "/p", "k".repeat(256), "{}"), 400, "invalid-key");
    assertProblem(
        send("POST", "/p", "one", "{}", "application/json", "Idempotency-Key", "two"),
        400, "invalid-key");
    assertThat(handler.executions).hasValue(0);
  }

  @Test
  void sameKeyDifferentRequest_is422_handlerNotRun() throws Exception {
    start(c -> c);
    String key = key();
    send("POST", "/p", key, "{\"amount\":1}");

    assertProblem(send("POST", "/p", key, "{\"amount\":2}"), 422, "key-reused");
    assertProblem(send("POST", "/other", key, "{\"amount\":1}"), 422, "key-reused");
    assertProblem(send("POST", "/p", key, "{\"amount\":1}", "text/plain"), 422, "key-reused");
    assertThat(handler.executions).hasValue(1);
  }

  /** Regression: the fingerprint took the raw request URI, so a retry spelled another way got 422. */
  @Test
  void samePathSpelledOtherwise_isTheSameRequest_replayed() throws Exception {
    start(c -> c);
    String key = key();
    HttpResponse<byte[]> first = send("POST", "/pay/x?a=1", key, "{}");

    for (String same : List.of("/%70ay/x?a=1", "/pay/%78?a=1", "/pay/./x?a=1", "/pay/y/../x?a=1")) {
      HttpResponse<byte[]> replay = send("POST", same, key, "{}");
      assertThat(replay.statusCode()).as(same).isEqualTo(201);
      assertThat(replay.headers().firstValue("Idempotent-Replayed")).as(same).hasValue("true");
      assertThat(replay.body()).as(same).isEqualTo(first.body());
    }
    // The query is compared as sent: another one is another request.
    assertProblem(send("POST", "/pay/x?a=2", key, "{}"), 422, "key-reused");
    assertProblem(send("POST", "/pay/x", key, "{}"), 422, "key-reused");
    assertThat(handler.executions).hasValue(1);
  }

  /** An empty query (a bare "?") is no query. */
  @Test
  void emptyQuery_isTheSameRequestAsNoQuery_replayed() throws Exception {
    start(c -> c);
    String key = key();
    send("POST", "/pay", key, "{}");

    HttpResponse<byte[]> replay = send("POST", "/pay?", key, "{}");

    assertThat(replay.statusCode()).isEqualTo(201);
    assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(handler.executions).hasValue(1);
  }

  @Test
  void scopes_sameKeyInTwoScopes_bothRunAndNeverShare() throws Exception {
    start(c -> c.scope(IdempotencyConfig.Scope.header("X-Tenant")));
    String key = key();

    HttpResponse<byte[]> a = send("POST", "/p", key, "{}", "application/json", "X-Tenant", "a");
    HttpResponse<byte[]> b = send("POST", "/p", key, "{}", "application/json", "X-Tenant", "b");

    assertThat(handler.executions).hasValue(2);
    assertThat(text(a)).contains("\"run\":1");
    assertThat(text(b)).contains("\"run\":2");
  }

  @Test
  void principalScope_usersNeverShareKeys_anonymousIsOneScope() throws Exception {
    IdempotencyFilter filter = IdempotencyFilter.builder()
        .config(IdempotencyConfig.builder().store(IdempotencyConfig.StoreType.MEMORY).build())
        .store(StoreBuilder.memory().build())
        .build();
    container = newContainer();
    container.start(new PrincipalFromHeader(filter), handler);
    String key = key();

    HttpResponse<byte[]> alice = send("POST", "/p", key, "{}", "application/json", "X-User", "alice");
    HttpResponse<byte[]> bob = send("POST", "/p", key, "{}", "application/json", "X-User", "bob");
    HttpResponse<byte[]> aliceAgain =
        send("POST", "/p", key, "{}", "application/json", "X-User", "alice");
    send("POST", "/p", key, "{}");
    HttpResponse<byte[]> anonymousAgain = send("POST", "/p", key, "{}");

    assertThat(text(alice)).contains("\"run\":1");
    assertThat(text(bob)).contains("\"run\":2");
    assertThat(aliceAgain.body()).isEqualTo(alice.body());
    assertThat(text(anonymousAgain)).contains("\"run\":3");
    assertThat(handler.executions).hasValue(3);
  }

  @Test
  void leaseRenewedWhileHandlerRuns_duplicateAfterLeaseTimeIsStill409() throws Exception {
    start(c -> c.lease(Duration.ofSeconds(1))); // the shortest lease the config accepts
    String key = key();

    java.util.concurrent.CompletableFuture<HttpResponse<byte[]>> slow =
        java.util.concurrent.CompletableFuture.supplyAsync(() -> {
          try {
            return send("POST", "/p?delayMs=3000", key, "{}");
          } catch (Exception e) {
            throw new IllegalStateException(e);
          }
        });
    while (handler.executions.get() == 0) {
      Thread.onSpinWait();
    }
    Thread.sleep(2000); // twice the lease: only renewal keeps the key held

    assertProblem(send("POST", "/p?delayMs=3000", key, "{}"), 409, "in-progress");
    assertThat(slow.get().statusCode()).isEqualTo(201);
    assertThat(handler.executions).hasValue(1);
  }

  @Test
  void noArgumentFilter_isConfiguredFromInitParams() throws Exception {
    container = newContainer();
    container.start(new IdempotencyFilter(), handler,
        java.util.Map.of("idempotency.store", "memory", "replay-header", "X-Replayed",
            "idempotency.purge.interval", "0s"));
    String key = key();

    send("POST", "/p", key, "{}");
    HttpResponse<byte[]> replay = send("POST", "/p", key, "{}");

    assertThat(replay.headers().firstValue("X-Replayed")).hasValue("true");
    assertThat(handler.executions).hasValue(1);
  }

  @Test
  void bodyOverLimit_is413_handlerNotRun() throws Exception {
    start(c -> c.maxRequestBytes(1024));

    assertProblem(send("POST", "/p", key(), "x".repeat(1025)), 413, "request-too-large");
    assertThat(send("POST", "/p", key(), "x".repeat(1024)).statusCode()).isEqualTo(201);
    assertThat(handler.executions).hasValue(1);
  }

  /**
   * Regression (issue 22): a body over the limit with its Content-Length was answered and the
   * connection closed while the client was still sending, so that one client in two saw a broken
   * pipe instead of the 413. The rest of the body (up to 2 MiB) is read first: the client sends
   * it all, then reads the 413.
   */
  @Test
  void bodyOverLimitWithContentLength_clientSendsItAllAndReads413() throws Exception {
    start(c -> c.maxRequestBytes(1024 * 1024));
    int port = container.uri().getPort();
    byte[] body = new byte[1024 * 1024 + 10];
    java.util.Arrays.fill(body, (byte) 'x');
    for (int attempt = 0; attempt < 3; attempt++) {
      try (java.net.Socket socket = new java.net.Socket("127.0.0.1", port)) {
        socket.setSoTimeout(30_000);
        // A small send buffer: the body gets out only as fast as the server reads it, as over a
        // real network (on loopback the kernel would otherwise take it all at once).
        socket.setSendBufferSize(4096);
        java.io.OutputStream out = socket.getOutputStream();
        out.write(("POST /p HTTP/1.1\r\nHost: 127.0.0.1\r\nIdempotency-Key: " + key()
            + "\r\nContent-Type: text/plain\r\nContent-Length: " + body.length
            + "\r\n\r\n").getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        out.write(body); // a broken pipe here was the defect
        out.flush();
        String status = new java.io.BufferedReader(new java.io.InputStreamReader(
            socket.getInputStream(), java.nio.charset.StandardCharsets.US_ASCII)).readLine();
        assertThat(status).startsWith("HTTP/1.1 413");
      }
    }
    assertThat(handler.executions).hasValue(0);
  }

  @Test
  void formPost_parametersReachHandler_andReplay() throws Exception {
    start(c -> c);
    String key = key();

    HttpResponse<byte[]> first =
        send("POST", "/f?form=1", key, "a=caf%C3%A9", "application/x-www-form-urlencoded");
    HttpResponse<byte[]> second =
        send("POST", "/f?form=1", key, "a=caf%C3%A9", "application/x-www-form-urlencoded");

    assertThat(text(first)).isEqualTo("a=caf\u00e9 run=1");
    assertThat(second.body()).isEqualTo(first.body());
  }

  @Test
  void releaseStatusOrException_isNotStored_retryRunsAgain() throws Exception {
    start(c -> c);
    String key = key();

    assertThat(send("POST", "/p?status=503", key, "{}").statusCode()).isEqualTo(503);
    assertThat(send("POST", "/p?status=503", key, "{}").statusCode()).isEqualTo(503);
    assertThat(handler.executions).hasValue(2);

    String other = key();
    assertThat(send("POST", "/p?throw=1", other, "{}").statusCode()).isEqualTo(500);
    assertThat(send("POST", "/p?throw=1", other, "{}").statusCode()).isEqualTo(500);
    assertThat(handler.executions).hasValue(4);
  }

  @Test
  void asyncResponse_isCapturedWhenItCompletes_andReplayed() throws Exception {
    start(c -> c);
    String key = key();

    HttpResponse<byte[]> first = send("POST", "/p?async=1", key, "{}");
    HttpResponse<byte[]> second = send("POST", "/p?async=1", key, "{}");

    assertThat(first.statusCode()).isEqualTo(202);
    assertThat(text(first)).isEqualTo("async run 1");
    assertThat(second.statusCode()).isEqualTo(202);
    assertThat(second.body()).isEqualTo(first.body());
    assertThat(second.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(handler.executions).hasValue(1);
  }

  @Test
  void clientError_isStoredAndReplayed() throws Exception {
    start(c -> c);
    String key = key();

    HttpResponse<byte[]> first = send("POST", "/p?status=400", key, "{}");
    HttpResponse<byte[]> second = send("POST", "/p?status=400", key, "{}");

    assertThat(second.statusCode()).isEqualTo(400);
    assertThat(second.body()).isEqualTo(first.body());
    assertThat(handler.executions).hasValue(1);
  }

  @Test
  void sendError_isCapturedAndReplayed() throws Exception {
    start(c -> c);
    String key = key();

    HttpResponse<byte[]> first = send("POST", "/p?error=404", key, "{}");
    HttpResponse<byte[]> second = send("POST", "/p?error=404", key, "{}");

    assertThat(first.statusCode()).isEqualTo(404);
    assertThat(second.statusCode()).isEqualTo(404);
    assertThat(second.body()).isEqualTo(first.body());
    assertThat(handler.executions).hasValue(1);
  }

  @Test
  void writerWithCharset_andFlush_doNotCommitEarly_bytesReplayed() throws Exception {
    start(c -> c);
    String key = key();

    HttpResponse<byte[]> first = send("POST", "/p?writer=1", key, "{}");
    HttpResponse<byte[]> second = send("POST", "/p?writer=1", key, "{}");

    assertThat(text(first)).isEqualTo("h\u00e9llo w\u00f6rld \u20ac run 1");
    assertThat(first.headers().firstValue("X-After-Flush")).hasValue("still settable");
    assertThat(second.body()).isEqualTo(first.body());
    assertThat(second.headers().firstValue("X-After-Flush")).hasValue("still settable");
  }

  @Test
  void responseOverLimit_reachesFirstClient_duplicateGets409NamingStatus() throws Exception {
    start(c -> c.maxResponseBytes(1000));
    String key = key();

    HttpResponse<byte[]> first = send("POST", "/p?size=5000&status=202", key, "{}");
    HttpResponse<byte[]> second = send("POST", "/p?size=5000&status=202", key, "{}");

    assertThat(first.statusCode()).isEqualTo(202);
    assertThat(first.body()).hasSize(5000);
    assertProblem(second, 409, "response-not-stored");
    assertThat(text(second)).contains("status 202");
    assertThat(handler.executions).hasValue(1);
  }

  // Regression: with getWriter() the charset went missing from Content-Type (Tomcat sent
  // "application/json" for ISO-8859-1 bytes, Jetty "text/html" for UTF-8 ones), and on Tomcat the
  // Content-Language of setLocale was not stored.
  @ParameterizedTest
  @ValueSource(strings = {"application/json", "text/plain", "text/html"})
  void writer_contentTypeCharsetAndLanguage_areTheContainersOwn_onFirstAndReplay(String type)
      throws Exception {
    start(c -> c.excludePaths(List.of("/bare/*")));
    String query = "?writerType=" + type + "&locale=1";
    String key = key();

    HttpResponse<byte[]> bare = send("POST", "/bare/w" + query, null, "{}");
    HttpResponse<byte[]> first = send("POST", "/w" + query, key, "{}");
    HttpResponse<byte[]> replay = send("POST", "/w" + query, key, "{}");

    assertThat(bare.headers().allValues("Content-Language")).containsExactly("de-DE");
    assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    for (HttpResponse<byte[]> filtered : List.of(first, replay)) {
      assertThat(filtered.headers().allValues("Content-Type"))
          .isEqualTo(bare.headers().allValues("Content-Type"));
      assertThat(filtered.headers().allValues("Content-Language"))
          .isEqualTo(bare.headers().allValues("Content-Language"));
      assertThat(filtered.body()).isEqualTo(bare.body());
    }
  }

  // Regression: getWriter(); reset(); getOutputStream() was a 500 through the filter.
  @Test
  void reset_clearsTheWriterChoice_outputStreamThenWorksAsWithoutFilter() throws Exception {
    start(c -> c.excludePaths(List.of("/bare/*")));
    String key = key();

    HttpResponse<byte[]> bare = send("POST", "/bare/r?reset=1", null, "{}");
    HttpResponse<byte[]> first = send("POST", "/r?reset=1", key, "{}");
    HttpResponse<byte[]> replay = send("POST", "/r?reset=1", key, "{}");

    assertThat(bare.statusCode()).isEqualTo(201);
    assertThat(text(bare)).isEqualTo("ok");
    assertThat(first.statusCode()).isEqualTo(201);
    assertThat(first.body()).isEqualTo(bare.body());
    assertThat(replay.statusCode()).isEqualTo(201);
    assertThat(replay.body()).isEqualTo(bare.body());
  }

  // Regression: the Servlet 6.1 sendRedirect overloads went past the capture to the client.
  @ParameterizedTest
  @CsvSource({"int, 303, ''", "boolean, 302, moved", "int-boolean, 307, ''"})
  void sendRedirect61Overloads_areCaptured_andReplayed(String overload, int status, String body)
      throws Exception {
    start(c -> c);
    String key = key();

    HttpResponse<byte[]> first = send("POST", "/p?redirect=" + overload, key, "{}");
    HttpResponse<byte[]> replay = send("POST", "/p?redirect=" + overload, key, "{}");

    for (HttpResponse<byte[]> response : List.of(first, replay)) {
      assertThat(response.statusCode()).isEqualTo(status);
      assertThat(response.headers().firstValue("Location").orElseThrow()).endsWith("/payments/42");
      assertThat(text(response)).isEqualTo(body);
    }
    assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(handler.executions).hasValue(1);
  }

  // Regression: a 303 from sendRedirect(String, int) reached the client although its record
  // could not be stored (then a 500 with a stack trace, and the key never released).
  @Test
  void sendRedirect61_whenTheRecordCannotBeStored_is503_notTheRedirect() throws Exception {
    IdempotencyConfig config =
        IdempotencyConfig.builder().store(IdempotencyConfig.StoreType.MEMORY)
            .completionTimeout(Duration.ofMillis(300)).build();
    start(IdempotencyFilter.builder()
        .config(config)
        .store(new FailingCompletions(config.storeBuilder().build()))
        .build());

    HttpResponse<byte[]> response = send("POST", "/p?redirect=int", key(), "{}");

    assertProblem(response, 503, "store-unavailable");
    assertThat(response.headers().firstValue("Location")).isEmpty();
  }

  // Regression: the 503 reset the container's whole response, so the headers that filters in
  // front had set (CORS, a request id) were missing from it; the handler's own were rightly gone.
  @Test
  void responseCannotBeStored_503KeepsTheHeadersOfFiltersInFront_notTheHandlers()
      throws Exception {
    IdempotencyConfig config =
        IdempotencyConfig.builder().store(IdempotencyConfig.StoreType.MEMORY)
            .completionTimeout(Duration.ofMillis(300)).build();
    container = newContainer();
    container.start(
        new HeadersInFront(IdempotencyFilter.builder().config(config)
            .store(new FailingCompletions(config.storeBuilder().build())).build()),
        handler);

    HttpResponse<byte[]> response =
        send("POST", "/p", key(), "{}", "application/json", "Origin", "https://a.example");

    assertProblem(response, 503, "store-unavailable");
    assertThat(response.headers().allValues("Access-Control-Allow-Origin"))
        .containsExactly("https://a.example");
    assertThat(response.headers().allValues("X-Request-Id")).hasSize(1);
    assertThat(response.headers().allValues("X-Handler")).isEmpty();
    assertThat(response.headers().allValues("X-Multi")).isEmpty();
    assertThat(response.headers().allValues("Set-Cookie")).isEmpty();
  }

  // Regression: a form body read by a filter in front (getParameter, as a CSRF filter does) left
  // idemkey 0 bytes: the handler lost the fields and a different body was replayed, not a 422.
  @Test
  void formReadByFilterInFront_handlerGetsFields_differentBodySameKeyIs422() throws Exception {
    IdempotencyConfig config =
        IdempotencyConfig.builder().store(IdempotencyConfig.StoreType.MEMORY).build();
    container = newContainer();
    container.start(
        new FormReadInFront(
            IdempotencyFilter.builder().config(config).store(config.storeBuilder().build()).build()),
        handler);
    String key = key();
    String form = "application/x-www-form-urlencoded";

    HttpResponse<byte[]> first = send("POST", "/f?form=1", key, "a=100&csrf=t", form);
    HttpResponse<byte[]> replay = send("POST", "/f?form=1", key, "a=100&csrf=t", form);
    HttpResponse<byte[]> other = send("POST", "/f?form=1", key, "a=999999&csrf=t", form);

    assertThat(text(first)).isEqualTo("a=100 run=1");
    assertThat(replay.body()).isEqualTo(first.body());
    assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertProblem(other, 422, "key-reused");
    assertThat(handler.executions).hasValue(1);
  }

  // Regression: getParts() failed (400) through the filter, which had consumed the body.
  @Test
  void multipartUpload_partsReachHandlerAsWithoutFilter_otherFileSameKeyIs422() throws Exception {
    start(c -> c.excludePaths(List.of("/bare/*")));
    String key = key();
    String type = "multipart/form-data; boundary=idemkey-boundary";

    HttpResponse<byte[]> bare = send("POST", "/bare/up?parts=1", null, multipart("hello"), type);
    HttpResponse<byte[]> first = send("POST", "/up?parts=1", key, multipart("hello"), type);
    HttpResponse<byte[]> replay = send("POST", "/up?parts=1", key, multipart("hello"), type);
    HttpResponse<byte[]> otherFile = send("POST", "/up?parts=1", key, multipart("HELLO"), type);
    // A retry whose client chose another boundary is the same request.
    HttpResponse<byte[]> newBoundary = send("POST", "/up?parts=1", key,
        multipart("hello").replace("idemkey-boundary", "other-boundary"),
        "multipart/form-data; boundary=other-boundary");

    assertThat(text(bare)).isEqualTo("a=1 parts=a:null:1;f:x.txt:hello;");
    assertThat(first.statusCode()).isEqualTo(201);
    assertThat(first.body()).isEqualTo(bare.body());
    assertThat(replay.body()).isEqualTo(bare.body());
    assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertProblem(otherFile, 422, "key-reused");
    assertThat(newBoundary.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(newBoundary.body()).isEqualTo(bare.body());
    assertThat(handler.executions).hasValue(2);
  }

  static String multipart(String fileContent) {
    return "--idemkey-boundary\r\n"
        + "Content-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
        + "--idemkey-boundary\r\n"
        + "Content-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\n"
        + "Content-Type: text/plain\r\n\r\n" + fileContent + "\r\n"
        + "--idemkey-boundary--\r\n";
  }

  // Regression: the whole body was buffered whatever max-response-bytes said (a 600 MB download
  // died with OutOfMemoryError). The handler waits, mid-stream, for the client to have bytes.
  @Test
  void responseOverLimit_streamsAsWritten_neverBufferedPastLimit_duplicateGets409()
      throws Exception {
    int limit = 1 << 20;
    int mib = 64;
    start(c -> c.maxResponseBytes(limit));
    String key = key();
    HttpRequest request = HttpRequest.newBuilder(URI.create(container.uri() + "/p?streamMiB=" + mib))
        .timeout(Duration.ofSeconds(60))
        .header("Idempotency-Key", key)
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString("{}"))
        .build();

    HttpResponse<java.io.InputStream> first = client
        .sendAsync(request, HttpResponse.BodyHandlers.ofInputStream())
        .get(5, java.util.concurrent.TimeUnit.SECONDS);
    long received = 0;
    long wrongBytes = 0;
    try (java.io.InputStream in = first.body()) {
      byte[] buffer = new byte[64 * 1024];
      for (int n; (n = in.read(buffer)) >= 0; received += n) {
        handler.clientHasBytes.countDown();
        for (int i = 0; i < n; i++) {
          if (buffer[i] != (byte) ((received + i) >>> 16)) {
            wrongBytes++;
          }
        }
      }
    }
    HttpResponse<byte[]> duplicate = send("POST", "/p?streamMiB=" + mib, key, "{}");

    assertThat(first.statusCode()).isEqualTo(200);
    assertThat(received).isEqualTo((long) mib << 20);
    assertThat(wrongBytes).isZero();
    assertThat(handler.clientHadBytesMidStream).isTrue();
    assertThat(handler.largestCaptureBuffer).isBetween(1, limit);
    assertProblem(duplicate, 409, "response-not-stored");
    assertThat(text(duplicate)).contains("status 200");
    assertThat(handler.executions).hasValue(1);
  }

  @Test
  void concurrentDuplicates_reject_handlerRunsOnce_othersGet409OrSameBytes() throws Exception {
    start(c -> c);
    assertConcurrentDuplicates(32, false);
  }

  // Regression: Retry-After was the holder's whole lease left (30 s by default), so a client that
  // obeyed it waited 30 s for a request that finished in milliseconds.
  @Test
  void duplicateWhileTheFirstRuns_is409WithRetryAfterOneSecond_notTheLease() throws Exception {
    start(c -> c.lease(Duration.ofSeconds(30)));
    handler.gate = new java.util.concurrent.CountDownLatch(1);
    String key = key();
    java.util.concurrent.CompletableFuture<HttpResponse<byte[]>> first = client.sendAsync(
        HttpRequest.newBuilder(URI.create(container.uri() + "/p?gate=1"))
            .timeout(Duration.ofSeconds(30)).header("Content-Type", "application/json")
            .header("Idempotency-Key", key).POST(HttpRequest.BodyPublishers.ofString("{}")).build(),
        HttpResponse.BodyHandlers.ofByteArray());
    while (handler.executions.get() == 0) {
      Thread.sleep(10);
    }

    HttpResponse<byte[]> duplicate = send("POST", "/p?gate=1", key, "{}");
    handler.gate.countDown();

    assertProblem(duplicate, 409, "in-progress");
    assertThat(duplicate.headers().allValues("Retry-After")).containsExactly("1");
    assertThat(first.get(30, java.util.concurrent.TimeUnit.SECONDS).statusCode()).isEqualTo(201);
  }

  @Test
  void waiter_firstRequestReleased_is409WithRetryAfterOneSecond_asTheReadmeSays()
      throws Exception {
    IdempotencyConfig config = IdempotencyConfig.builder()
        .store(IdempotencyConfig.StoreType.MEMORY)
        .onInFlight(IdempotencyConfig.InFlight.WAIT).build();
    java.util.concurrent.atomic.AtomicInteger claims =
        new java.util.concurrent.atomic.AtomicInteger();
    start(IdempotencyFilter.builder().config(config)
        .store(new ForwardingStore(config.storeBuilder().build()) {
          @Override
          public io.idemkey.store.ClaimResult claim(
              IdempotencyKey key, io.idemkey.store.Fingerprint fingerprint) {
            io.idemkey.store.ClaimResult claim = super.claim(key, fingerprint);
            claims.incrementAndGet();
            return claim;
          }
        }).build());
    handler.gate = new java.util.concurrent.CountDownLatch(1);
    String key = key();
    java.util.concurrent.CompletableFuture<HttpResponse<byte[]>> first = client.sendAsync(
        HttpRequest.newBuilder(URI.create(container.uri() + "/p?gate=1&status=503"))
            .timeout(Duration.ofSeconds(30)).header("Content-Type", "application/json")
            .header("Idempotency-Key", key).POST(HttpRequest.BodyPublishers.ofString("{}")).build(),
        HttpResponse.BodyHandlers.ofByteArray());
    while (handler.executions.get() == 0) {
      Thread.sleep(10);
    }
    java.util.concurrent.CompletableFuture<HttpResponse<byte[]>> waiter = client.sendAsync(
        HttpRequest.newBuilder(URI.create(container.uri() + "/p?gate=1&status=503"))
            .timeout(Duration.ofSeconds(30)).header("Content-Type", "application/json")
            .header("Idempotency-Key", key).POST(HttpRequest.BodyPublishers.ofString("{}")).build(),
        HttpResponse.BodyHandlers.ofByteArray());
    while (claims.get() < 3) { // the first's claim, the waiter's, the waiters' first look
      Thread.sleep(10);
    }
    handler.gate.countDown();

    assertThat(first.get(30, java.util.concurrent.TimeUnit.SECONDS).statusCode()).isEqualTo(503);
    HttpResponse<byte[]> released = waiter.get(30, java.util.concurrent.TimeUnit.SECONDS);
    assertProblem(released, 409, "in-progress");
    assertThat(released.headers().allValues("Retry-After")).containsExactly("1");
    assertThat(handler.executions).hasValue(1);
  }

  // Regression: a waiter's place was taken before startAsync, and not given back when startAsync
  // threw: once max-waiters places had leaked, every duplicate got 409 instead of waiting.
  @Test
  void waiter_startAsyncThrows_itsPlaceIsGivenBack_theNextDuplicateWaits() throws Exception {
    IdempotencyConfig config = IdempotencyConfig.builder()
        .store(IdempotencyConfig.StoreType.MEMORY)
        .onInFlight(IdempotencyConfig.InFlight.WAIT).maxWaiters(1).build();
    java.util.concurrent.atomic.AtomicInteger claims =
        new java.util.concurrent.atomic.AtomicInteger();
    IdempotencyFilter idempotency = IdempotencyFilter.builder().config(config)
        .store(new ForwardingStore(config.storeBuilder().build()) {
          @Override
          public io.idemkey.store.ClaimResult claim(
              IdempotencyKey key, io.idemkey.store.Fingerprint fingerprint) {
            io.idemkey.store.ClaimResult claim = super.claim(key, fingerprint);
            claims.incrementAndGet();
            return claim;
          }
        }).build();
    // In front: a request whose startAsync fails although it says async is supported.
    jakarta.servlet.Filter breaksAsync = (request, response, chain) -> idempotency.doFilter(
        ((jakarta.servlet.http.HttpServletRequest) request).getHeader("X-Break-Async") == null
            ? request
            : new jakarta.servlet.http.HttpServletRequestWrapper(
                (jakarta.servlet.http.HttpServletRequest) request) {
              @Override
              public jakarta.servlet.AsyncContext startAsync(
                  jakarta.servlet.ServletRequest req, jakarta.servlet.ServletResponse res) {
                throw new IllegalStateException("test: no async here");
              }
            },
        response, chain);
    container = newContainer();
    container.start(breaksAsync, handler);
    handler.gate = new java.util.concurrent.CountDownLatch(1);
    String key = key();
    java.util.concurrent.CompletableFuture<HttpResponse<byte[]>> first =
        client.sendAsync(gated(key), HttpResponse.BodyHandlers.ofByteArray());
    while (handler.executions.get() == 0) {
      Thread.sleep(10);
    }

    HttpResponse<byte[]> broken =
        send("POST", "/p?gate=1", key, "{}", "application/json", "X-Break-Async", "1");
    java.util.concurrent.CompletableFuture<HttpResponse<byte[]>> waiter =
        client.sendAsync(gated(key), HttpResponse.BodyHandlers.ofByteArray());
    // The first's claim, the broken one's, the waiter's and its first look; or the waiter's 409.
    while (claims.get() < 4 && !waiter.isDone()) {
      Thread.sleep(10);
    }
    handler.gate.countDown();

    assertThat(broken.statusCode()).isEqualTo(500);
    HttpResponse<byte[]> replay = waiter.get(30, java.util.concurrent.TimeUnit.SECONDS);
    assertThat(replay.statusCode()).isEqualTo(201);
    assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(replay.body())
        .isEqualTo(first.get(30, java.util.concurrent.TimeUnit.SECONDS).body());
  }

  HttpRequest gated(String key) {
    return HttpRequest.newBuilder(URI.create(container.uri() + "/p?gate=1"))
        .timeout(Duration.ofSeconds(30)).header("Content-Type", "application/json")
        .header("Idempotency-Key", key).POST(HttpRequest.BodyPublishers.ofString("{}")).build();
  }

  @Test
  void concurrentDuplicates_wait_allGetTheSameBytes() throws Exception {
    start(c -> c.onInFlight(IdempotencyConfig.InFlight.WAIT));
    assertConcurrentDuplicates(16, true);
  }

  @Test
  void concurrentDuplicates_onPostgres_handlerRunsOnce() throws Exception {
    IdempotencyConfig config = IdempotencyConfig.builder().build();
    start(IdempotencyFilter.builder()
        .config(config)
        .store(config.applyTo(StoreBuilder.postgres(TestDatabase.dataSource()))
            .tableName(TestDatabase.freshTable()).migrate(false).build())
        .build());
    assertConcurrentDuplicates(32, false);
  }

  void assertConcurrentDuplicates(int threads, boolean allReplay) throws Exception {
    String key = key();
    CyclicBarrier start = new CyclicBarrier(threads);
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      List<Future<HttpResponse<byte[]>>> futures = new ArrayList<>();
      for (int i = 0; i < threads; i++) {
        futures.add(pool.submit(() -> {
          start.await();
          return send("POST", "/p?delayMs=400", key, "{}");
        }));
      }
      List<HttpResponse<byte[]>> responses = new ArrayList<>();
      for (Future<HttpResponse<byte[]>> future : futures) {
        responses.add(future.get());
      }
      assertThat(handler.executions).hasValue(1);
      byte[] executed = responses.stream().filter(r -> r.statusCode() == 201
              && r.headers().firstValue("Idempotent-Replayed").isEmpty())
          .findFirst().orElseThrow().body();
      for (HttpResponse<byte[]> response : responses) {
        if (response.statusCode() == 409 && !allReplay) {
          assertProblem(response, 409, "in-progress");
          assertThat(response.headers().firstValue("Retry-After")).isPresent();
        } else {
          assertThat(response.statusCode()).isEqualTo(201);
          assertThat(response.body()).isEqualTo(executed);
        }
      }
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void storeUnreachable_failClosed_is503WithRetryAfter_handlerNotRun() throws Exception {
    IdempotencyConfig config = IdempotencyConfig.builder().build();
    start(IdempotencyFilter.builder().config(config).store(unreachableStore()).build());

    HttpResponse<byte[]> response = send("POST", "/p", key(), "{}");

    assertProblem(response, 503, "store-unavailable");
    assertThat(response.headers().firstValue("Retry-After")).isPresent();
    assertThat(handler.executions).hasValue(0);
  }

  @Test
  void storeUnreachable_failOpen_runsHandlerAndCountsIt() throws Exception {
    IdempotencyConfig config = IdempotencyConfig.builder()
        .onStoreFailure(IdempotencyConfig.OnStoreFailure.FAIL_OPEN).build();
    start(IdempotencyFilter.builder()
        .config(config).store(unreachableStore()).listener(events::add).build());

    assertThat(send("POST", "/p", key(), "{\"a\":1}").statusCode()).isEqualTo(201);
    assertThat(handler.executions).hasValue(1);
    assertThat(awaitEvents(1)).extracting(IdempotencyListener.Event::outcome)
        .containsExactly(IdempotencyListener.Outcome.FAIL_OPEN);
  }

  @Test
  void completedKey_afterTtl_isANewKey() throws Exception {
    io.idemkey.store.MutableClock clock = io.idemkey.store.MutableClock.atEpochDay();
    IdempotencyConfig config = IdempotencyConfig.builder().ttl(Duration.ofHours(1)).build();
    start(IdempotencyFilter.builder()
        .config(config)
        .store(config.applyTo(StoreBuilder.memory()).clock(clock).build())
        .clock(clock)
        .build());
    String key = key();
    send("POST", "/p", key, "{}");
    clock.advance(Duration.ofMinutes(59));
    assertThat(send("POST", "/p", key, "{}").headers().firstValue("Idempotent-Replayed"))
        .hasValue("true");

    clock.advance(Duration.ofMinutes(1));

    HttpResponse<byte[]> fresh = send("POST", "/p", key, "{\"other\":1}");
    assertThat(fresh.headers().firstValue("Idempotent-Replayed")).isEmpty();
    assertThat(handler.executions).hasValue(2);
  }

  @Test
  void databaseStoppedAndStarted_503ThenServesAgainWithoutRestart(
      @org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
    int port;
    try (java.net.ServerSocket socket = new java.net.ServerSocket(0)) {
      port = socket.getLocalPort();
    }
    java.nio.file.Path data = java.nio.file.Files.createDirectories(dir.resolve("pg"));
    io.zonky.test.db.postgres.embedded.EmbeddedPostgres postgres = startPostgres(data, port);
    try {
      IdempotencyConfig config = IdempotencyConfig.builder()
          .jdbcUrl(postgres.getJdbcUrl("postgres", "postgres"))
          .jdbcUsername("postgres").jdbcPassword("postgres")
          .jdbcConnectTimeout(Duration.ofMillis(500))
          .cacheMaxBytes(0)
          .build();
      start(IdempotencyFilter.builder().config(config).build());
      String before = key();
      HttpResponse<byte[]> stored = send("POST", "/p", before, "{}");

      postgres.close();
      assertProblem(send("POST", "/p", key(), "{}"), 503, "store-unavailable");

      postgres = startPostgres(data, port);
      HttpResponse<byte[]> replay = null;
      for (int i = 0; i < 50; i++) {
        replay = send("POST", "/p", before, "{}");
        if (replay.statusCode() != 503) {
          break;
        }
        Thread.sleep(200);
      }
      assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
      assertThat(replay.body()).isEqualTo(stored.body());
      assertThat(handler.executions).hasValue(1);
    } finally {
      postgres.close();
    }
  }

  static io.zonky.test.db.postgres.embedded.EmbeddedPostgres startPostgres(
      java.nio.file.Path data, int port) throws IOException {
    return io.zonky.test.db.postgres.embedded.EmbeddedPostgres.builder()
        .setDataDirectory(data)
        .setCleanDataDirectory(false)
        .setPort(port)
        .start();
  }

  static io.idemkey.store.IdempotencyStore unreachableStore() {
    return StoreBuilder.postgres("jdbc:postgresql://127.0.0.1:1/none", "u", "p")
        .migrate(false)
        .connectTimeout(Duration.ofMillis(300))
        .purgeInterval(Duration.ZERO)
        .build();
  }
}
