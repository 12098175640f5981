package io.idemkey.filter;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.store.ClaimResult;
import io.idemkey.store.Fingerprint;
import io.idemkey.store.ForwardingStore;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.MutableClock;
import io.idemkey.store.StoreBuilder;
import io.idemkey.store.StoredResponse;
import io.idemkey.store.TestDatabase;
import jakarta.servlet.DispatcherType;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.eclipse.jetty.ee10.servlet.FilterHolder;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Waiting duplicates (on-in-flight=wait) on a Jetty with a small thread pool and a real
 * PostgreSQL: they hold no thread, do not poll, and are woken when the first request completes.
 */
class WaitersTest {

  static final int THREADS = 24;
  static final int WAITERS = 120;

  final TestHandler handler = new TestHandler();
  final AtomicInteger claims = new AtomicInteger();
  final HttpClient client =
      HttpClient.newBuilder().executor(Executors.newFixedThreadPool(8)).build();
  Server server;
  URI uri;

  @AfterEach
  void stop() throws Exception {
    if (server != null) {
      server.stop();
    }
  }

  /** The PostgreSQL store, with its claims counted. */
  final class CountedClaims extends ForwardingStore {
    CountedClaims(IdempotencyStore store) {
      super(store);
    }

    @Override
    public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
      claims.incrementAndGet();
      return store.claim(key, fingerprint);
    }
  }

  void start() throws Exception {
    start(1000);
  }

  void start(int maxWaiters) throws Exception {
    IdempotencyConfig config = waiting(maxWaiters).build();
    start(config, config.applyTo(StoreBuilder.postgres(TestDatabase.dataSource()))
        .tableName(TestDatabase.freshTable()).migrate(false).purgeInterval(Duration.ZERO).build());
  }

  static IdempotencyConfig.Builder waiting(int maxWaiters) {
    return IdempotencyConfig.builder().onInFlight(IdempotencyConfig.InFlight.WAIT)
        .waitTimeout(Duration.ofSeconds(30)).maxWaiters(maxWaiters);
  }

  void start(IdempotencyConfig config, IdempotencyStore store) throws Exception {
    QueuedThreadPool pool = new QueuedThreadPool(THREADS, 4);
    server = new Server(pool);
    ServerConnector connector = new ServerConnector(server, 1, 1);
    connector.setHost("127.0.0.1");
    // Longer than any wait here: a waiter that is never woken gets its 409, not a closed socket.
    connector.setIdleTimeout(120_000);
    // Every waiter's connection is opened at once: a backlog of the OS default (50) can overflow
    // on a loaded machine, and a connection dropped there reads no bytes at all.
    connector.setAcceptQueueSize(WAITERS + 16);
    server.addConnector(connector);
    ServletContextHandler context = new ServletContextHandler();
    FilterHolder filter = new FilterHolder(
        IdempotencyFilter.builder().config(config).store(new CountedClaims(store)).build());
    filter.setAsyncSupported(true);
    context.addFilter(filter, "/*", EnumSet.of(DispatcherType.REQUEST, DispatcherType.ASYNC));
    ServletHolder servlet = new ServletHolder(handler);
    servlet.setAsyncSupported(true);
    context.addServlet(servlet, "/*");
    server.setHandler(context);
    server.start();
    uri = URI.create("http://127.0.0.1:" + connector.getLocalPort());
  }

  HttpRequest post(String path, String key) {
    return HttpRequest.newBuilder(URI.create(uri + path))
        .timeout(Duration.ofSeconds(60))
        .header("Idempotency-Key", key)
        .POST(HttpRequest.BodyPublishers.ofString("{}"))
        .build();
  }

  @Test
  void await_moreWaitersThanThreads_serverStillAnswersAndWaitersGetTheReplay() throws Exception {
    start();
    // The first runs until the test lets it go: no timing decides what is still running.
    handler.gate = new CountDownLatch(1);
    String key = UUID.randomUUID().toString();
    CompletableFuture<HttpResponse<String>> first =
        client.sendAsync(post("/p?gate=1", key), HttpResponse.BodyHandlers.ofString());
    while (handler.executions.get() == 0) {
      Thread.sleep(10);
    }
    List<CompletableFuture<HttpResponse<String>>> waiting = new ArrayList<>();
    for (int i = 0; i < WAITERS; i++) {
      waiting.add(client.sendAsync(post("/p?gate=1", key), HttpResponse.BodyHandlers.ofString()));
    }
    // Every duplicate has claimed once and its group looked once: all of them wait.
    while (claims.get() < 1 + WAITERS + 1) {
      Thread.sleep(10);
    }
    int claimsWhileWaiting = claims.get();

    // More requests wait than the server has threads: an uncovered request is still served.
    HttpResponse<String> other = client.send(
        HttpRequest.newBuilder(URI.create(uri + "/other")).timeout(Duration.ofSeconds(10))
            .GET().build(),
        HttpResponse.BodyHandlers.ofString());
    assertThat(other.statusCode()).isEqualTo(201);
    // ... while the first is still running, not once the waiters have let their threads go.
    assertThat(first).isNotDone();
    handler.gate.countDown();

    HttpResponse<String> answer = first.get(60, TimeUnit.SECONDS);
    assertThat(answer.statusCode()).isEqualTo(201);
    for (CompletableFuture<HttpResponse<String>> duplicate : waiting) {
      HttpResponse<String> replay = duplicate.get(60, TimeUnit.SECONDS);
      assertThat(replay.statusCode()).isEqualTo(201);
      assertThat(replay.body()).isEqualTo(answer.body());
      assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    }
    // The first request and the uncovered one ran the handler: no duplicate did.
    assertThat(handler.executions.get()).isEqualTo(2);
    // One claim per request, one look when the first waiter arrived, one again each time the
    // listening connection came up or was replaced (a check of it that timed out on a loaded
    // machine: seen once in a full run), one when the key settled. A few looks, not one per
    // waiter or per tick: nothing polled while they waited.
    assertThat(claimsWhileWaiting).isLessThanOrEqualTo(1 + WAITERS + 5);
    assertThat(claims.get()).isLessThanOrEqualTo(1 + WAITERS + 6);
  }

  @Test
  void await_moreThanMaxWaiters_theOneBeyondIs409_theWaiterGetsTheReplay() throws Exception {
    start(1);
    String key = UUID.randomUUID().toString();
    CompletableFuture<HttpResponse<String>> first =
        client.sendAsync(post("/p?delayMs=3000", key), HttpResponse.BodyHandlers.ofString());
    for (int i = 0; i < 50 && handler.executions.get() == 0; i++) {
      Thread.sleep(20);
    }
    CompletableFuture<HttpResponse<String>> waiter =
        client.sendAsync(post("/p?delayMs=3000", key), HttpResponse.BodyHandlers.ofString());
    for (int i = 0; i < 100 && claims.get() < 3; i++) { // the waiter's claim and its first look
      Thread.sleep(20);
    }

    HttpResponse<String> beyond = client.send(post("/p?delayMs=3000", key),
        HttpResponse.BodyHandlers.ofString());

    assertThat(first).isNotDone();
    assertThat(beyond.statusCode()).isEqualTo(409);
    assertThat(beyond.body()).contains("urn:idemkey:problem:in-progress");
    assertThat(beyond.headers().firstValue("Retry-After")).isPresent();
    HttpResponse<String> replay = waiter.get(60, TimeUnit.SECONDS);
    assertThat(replay.statusCode()).isEqualTo(201);
    assertThat(replay.body()).isEqualTo(first.get(60, TimeUnit.SECONDS).body());
    assertThat(handler.executions.get()).isEqualTo(1);
  }

  /**
   * Regression: the waiters of a key were answered one after another with blocking writes on one
   * thread, so a client that did not read its replay stalled every waiter behind it.
   */
  @Test
  void settle_oneWaiterDoesNotRead_theOthersGetTheirReplayAnyway() throws Exception {
    // In memory: what is measured is the answering of waiters, not a 32 MiB write to PostgreSQL.
    IdempotencyConfig config = waiting(1000).maxResponseBytes(64 << 20)
        .store(IdempotencyConfig.StoreType.MEMORY).build();
    start(config, config.storeBuilder().build());
    handler.gate = new CountDownLatch(1);
    String key = UUID.randomUUID().toString();
    String path = "/p?gate=1&size=" + (32 << 20); // more than any socket buffers hold
    CompletableFuture<HttpResponse<byte[]>> first =
        client.sendAsync(post(path, key), HttpResponse.BodyHandlers.ofByteArray());
    while (handler.executions.get() == 0) {
      Thread.sleep(10);
    }
    try (java.net.Socket stalled = new java.net.Socket()) {
      stalled.setReceiveBufferSize(4096);
      stalled.connect(new java.net.InetSocketAddress("127.0.0.1", uri.getPort()));
      stalled.getOutputStream().write(("POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          + "Idempotency-Key: " + key + "\r\nContent-Length: 2\r\n\r\n{}")
          .getBytes(java.nio.charset.StandardCharsets.US_ASCII));
      while (claims.get() < 3) { // the first's claim, the stalled one's, its group's first look
        Thread.sleep(10);
      }
      CompletableFuture<HttpResponse<byte[]>> reading =
          client.sendAsync(post(path, key), HttpResponse.BodyHandlers.ofByteArray());
      while (claims.get() < 4) {
        Thread.sleep(10);
      }
      handler.gate.countDown();

      // Long before the stalled client's connection would time out (120 s).
      HttpResponse<byte[]> replay = reading.get(30, TimeUnit.SECONDS);
      assertThat(replay.statusCode()).isEqualTo(201);
      assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
      assertThat(replay.body()).hasSize(32 << 20);
      assertThat(first.get(30, TimeUnit.SECONDS).body()).hasSize(32 << 20);
    }
  }

  /**
   * Regression: a key that settled while a look was reading it (the look saw it in progress, the
   * wake-up came before the look had finished) left its waiters to the holder's lease end.
   */
  @Test
  void await_keySettlesDuringALook_waiterIsWokenBeforeTheLeaseEnds() throws Exception {
    IdempotencyStore memory = StoreBuilder.memory().lease(Duration.ofSeconds(60)).build();
    CountDownLatch lookRead = new CountDownLatch(1);
    CountDownLatch settled = new CountDownLatch(1);
    AtomicInteger looks = new AtomicInteger();
    IdempotencyStore store = new ForwardingStore(memory) {
      @Override
      public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
        ClaimResult read = store.claim(key, fingerprint);
        if (looks.incrementAndGet() == 2) { // the first look, after the waiter's own claim
          lookRead.countDown();
          await(settled);
        }
        return read;
      }
    };
    IdempotencyKey key = new IdempotencyKey("scope", "k");
    Fingerprint fingerprint = new Fingerprint(new byte[32]);
    ClaimResult.Held holder = (ClaimResult.Held) memory.claim(key, fingerprint);
    ClaimResult.InProgress first = (ClaimResult.InProgress) store.claim(key, fingerprint);
    try (Waiters waiters = new Waiters(store, Duration.ofSeconds(60), 10)) {
      CompletableFuture<Waiters.Outcome> outcome = new CompletableFuture<>();
      waiters.reserve().await(key, fingerprint, first, outcome::complete);
      assertThat(lookRead.await(10, TimeUnit.SECONDS)).isTrue();
      // The key completes (its watchers are woken) while the look still holds its stale read.
      memory.complete(key, holder.token(), new StoredResponse(201, List.of(), new byte[0], true));
      settled.countDown();

      ClaimResult answer = outcome.get(20, TimeUnit.SECONDS).claim();
      assertThat(answer).isInstanceOf(ClaimResult.Completed.class);
    }
  }

  /**
   * Regression: waiters were grouped by key alone and answered by the fingerprint of whichever
   * made the group. After a take-over by a request with another body, its own retry, waiting behind
   * a waiter of the first body, got 422 key-reused for the very request that ran.
   */
  @Test
  void await_waitersOfOneKeyWithTwoFingerprints_eachIsAnsweredByItsOwn() throws Exception {
    MutableClock clock = MutableClock.atEpochDay();
    IdempotencyStore memory =
        StoreBuilder.memory().clock(clock).lease(Duration.ofSeconds(60)).build();
    AtomicInteger looks = new AtomicInteger();
    IdempotencyStore store = new ForwardingStore(memory) {
      @Override
      public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
        ClaimResult claim = store.claim(key, fingerprint);
        looks.incrementAndGet();
        return claim;
      }
    };
    IdempotencyKey key = new IdempotencyKey("scope", "k");
    Fingerprint first = new Fingerprint(new byte[32]);
    byte[] otherBytes = new byte[32];
    otherBytes[0] = 1;
    Fingerprint second = new Fingerprint(otherBytes);
    memory.claim(key, first);
    ClaimResult.InProgress running = new ClaimResult.InProgress(Duration.ofSeconds(60));
    try (Waiters waiters = new Waiters(store, Duration.ofSeconds(60), 10)) {
      CompletableFuture<Waiters.Outcome> ofFirst = new CompletableFuture<>();
      waiters.reserve().await(key, first, running, ofFirst::complete);
      awaitLooks(looks, 1); // the first group's look: still in progress
      // The first request's lease runs out; a request with the other body takes the key over.
      clock.advance(Duration.ofSeconds(61));
      ClaimResult.Held takeOver = (ClaimResult.Held) memory.claim(key, second);
      CompletableFuture<Waiters.Outcome> ofSecond = new CompletableFuture<>();
      waiters.reserve().await(key, second, running, ofSecond::complete);

      memory.complete(key, takeOver.token(), new StoredResponse(201, List.of(), new byte[0], true));

      assertThat(ofSecond.get(20, TimeUnit.SECONDS).claim())
          .isInstanceOf(ClaimResult.Completed.class);
      assertThat(ofFirst.get(20, TimeUnit.SECONDS).claim())
          .isInstanceOf(ClaimResult.FingerprintMismatch.class);
    }
  }

  /**
   * Regression: a look that failed with anything but StoreUnavailableException (a bug) left its
   * group's wake-up count above zero, so the group never looked again: its waiters slept until
   * their wait-timeout, whatever the key did.
   */
  @Test
  void await_aLookFailsWithABug_theNextWakeUpLooksAgain() throws Exception {
    IdempotencyStore memory = StoreBuilder.memory().lease(Duration.ofSeconds(60)).build();
    AtomicInteger looks = new AtomicInteger();
    IdempotencyStore store = new ForwardingStore(memory) {
      @Override
      public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
        if (looks.incrementAndGet() == 1) {
          throw new IllegalStateException("test: a bug in the first look");
        }
        return store.claim(key, fingerprint);
      }
    };
    IdempotencyKey key = new IdempotencyKey("scope", "k");
    Fingerprint fingerprint = new Fingerprint(new byte[32]);
    ClaimResult.Held holder = (ClaimResult.Held) memory.claim(key, fingerprint);
    try (Waiters waiters = new Waiters(store, Duration.ofSeconds(60), 10)) {
      CompletableFuture<Waiters.Outcome> outcome = new CompletableFuture<>();
      waiters.reserve().await(key, fingerprint, new ClaimResult.InProgress(Duration.ofSeconds(60)),
          outcome::complete);
      awaitLooks(looks, 1);

      memory.complete(key, holder.token(), new StoredResponse(201, List.of(), new byte[0], true));

      // Woken by the completion, long before the wait (or the holder's lease) would run out.
      assertThat(outcome.get(20, TimeUnit.SECONDS).claim())
          .isInstanceOf(ClaimResult.Completed.class);
    }
  }

  static void awaitLooks(AtomicInteger looks, int count) throws InterruptedException {
    for (int i = 0; i < 500 && looks.get() < count; i++) {
      Thread.sleep(10);
    }
    assertThat(looks.get()).isGreaterThanOrEqualTo(count);
  }

  static void await(CountDownLatch latch) {
    try {
      latch.await(10, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
