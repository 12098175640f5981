package io.idemkey.filter;

import static org.assertj.core.api.Assertions.assertThat;

import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.migrations.TableName;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.RequestTransactions;
import io.idemkey.store.StoreBuilder;
import io.idemkey.store.TestDatabase;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import javax.sql.DataSource;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Transactional mode under load, on a real HikariCP pool and Jetty (SPEC §15): one connection per
 * request, none held while another service answers, a turn per connection, and nothing that a
 * request needs besides its own statements waiting for a connection another request holds.
 * Regression tests of issue 22: each of these failed when a request holding its transaction asked
 * the same pool for a second connection.
 */
class TransactionalConnectionsTest {

  static final int POOL_SIZE = 4;

  final HttpClient client = HttpClient.newHttpClient();
  final TableName table = TestDatabase.freshTable();
  HikariDataSource pool;
  JettyContainer container;

  @AfterEach
  void stop() throws Exception {
    if (container != null) {
      container.close();
    }
    if (pool != null) {
      pool.close();
    }
  }

  /**
   * A payment handler: a step (a call to another service), then its insert, in the request's
   * transaction. A body naming a gate holds the request in the handler, after the insert (its
   * connection held), until the test opens the gate.
   */
  static final class Payments extends HttpServlet {
    final DataSource dataSource;
    final CyclicBarrier together;
    final Map<String, CountDownLatch> gates = new ConcurrentHashMap<>();
    final Map<String, CountDownLatch> entered = new ConcurrentHashMap<>();
    final AtomicInteger runs = new AtomicInteger();

    Payments(DataSource dataSource, CyclicBarrier together) {
      this.dataSource = dataSource;
      this.together = together;
    }

    CountDownLatch gate(String name) {
      return gates.computeIfAbsent(name, n -> new CountDownLatch(1));
    }

    CountDownLatch entered(String name) {
      return entered.computeIfAbsent(name, n -> new CountDownLatch(1));
    }

    @Override
    protected void doPost(HttpServletRequest request, HttpServletResponse response)
        throws IOException {
      runs.incrementAndGet();
      String body = new String(request.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (body.equals("fail")) {
        response.sendError(500);
        return;
      }
      try {
        if (together != null) {
          together.await(20, TimeUnit.SECONDS); // every payment is in its handler
        }
        String charge = Steps.of(request).runText("charge", derivedKey -> "ch_" + derivedKey);
        try (Connection connection = dataSource.getConnection();
            Statement statement = connection.createStatement()) {
          statement.execute("SELECT 1");
        }
        entered(body).countDown();
        if (body.startsWith("gated")) {
          gate(body).await(30, TimeUnit.SECONDS);
        }
        response.setStatus(201);
        response.getOutputStream().write(("paid " + charge).getBytes(StandardCharsets.UTF_8));
      } catch (Exception e) {
        throw new IOException(e);
      }
    }
  }

  Payments start(IdempotencyConfig config, CyclicBarrier together) throws Exception {
    pool = TestDatabase.newPool(POOL_SIZE);
    pool.setConnectionTimeout(1_000);
    IdempotencyStore store = config.applyTo(StoreBuilder.postgres(pool))
        .tableName(table).migrate(false).purgeInterval(Duration.ZERO).build();
    Payments handler = new Payments(RequestTransactions.dataSource(pool), together);
    container = new JettyContainer();
    container.start(IdempotencyFilter.builder().config(config).store(store).build(), handler);
    return handler;
  }

  static IdempotencyConfig.Builder transactional() {
    return IdempotencyConfig.builder().transactional(true)
        .jdbcConnectTimeout(Duration.ofSeconds(1));
  }

  HttpRequest request(String key, String body) {
    return HttpRequest.newBuilder(URI.create(container.uri() + "/payments"))
        .timeout(Duration.ofSeconds(60))
        .header("Idempotency-Key", key)
        .header("Content-Type", "text/plain")
        .POST(HttpRequest.BodyPublishers.ofString(body))
        .build();
  }

  CompletableFuture<HttpResponse<String>> send(String key, String body) {
    return client.sendAsync(request(key, body), HttpResponse.BodyHandlers.ofString());
  }

  /** Was: with one connection kept for leases and steps asking for a second, 5 of 9 failed. */
  @Test
  void payments_asManyAtOnceAsThePoolHasConnections_eachWithAStep_allPaid() throws Exception {
    Payments handler = start(transactional().build(), new CyclicBarrier(POOL_SIZE));
    // A released request first (its key released on the node's own connection).
    assertThat(send(UUID.randomUUID().toString(), "fail").get(30, TimeUnit.SECONDS).statusCode())
        .isEqualTo(500);

    List<CompletableFuture<HttpResponse<String>>> payments = new ArrayList<>();
    for (int i = 0; i < POOL_SIZE; i++) {
      payments.add(send(UUID.randomUUID().toString(), "payment " + i));
    }
    for (CompletableFuture<HttpResponse<String>> payment : payments) {
      assertThat(payment.get(60, TimeUnit.SECONDS).statusCode()).isEqualTo(201);
    }
    assertThat(handler.runs.get()).isEqualTo(POOL_SIZE + 1);
  }

  /**
   * More requests than connections, each holding its connection: the next ones wait their turn
   * (up to connect-timeout) and, if none comes, are answered 503 before their handler runs; the
   * ones holding connections are not disturbed, and the refused one succeeds on retry.
   */
  @Test
  void payments_moreThanTheConnections_theNextWaitsItsTurnThen503BeforeItsHandler()
      throws Exception {
    Payments handler = start(transactional().build(), null);
    List<CompletableFuture<HttpResponse<String>>> holding = new ArrayList<>();
    for (int i = 0; i < POOL_SIZE; i++) {
      holding.add(send(UUID.randomUUID().toString(), "gated " + i));
      assertThat(handler.entered("gated " + i).await(20, TimeUnit.SECONDS)).isTrue();
    }
    String key = UUID.randomUUID().toString();
    HttpResponse<String> refused = send(key, "next").get(30, TimeUnit.SECONDS);
    assertThat(refused.statusCode()).isEqualTo(503);
    assertThat(refused.body()).contains("store-unavailable");
    assertThat(refused.headers().firstValue("Retry-After")).isPresent();
    assertThat(handler.runs.get()).as("the refused request's handler never ran")
        .isEqualTo(POOL_SIZE);

    // A request that waits while a turn comes back is served in its turn.
    CompletableFuture<HttpResponse<String>> waiting = send(UUID.randomUUID().toString(), "later");
    Thread.sleep(200);
    handler.gate("gated 0").countDown();
    assertThat(waiting.get(30, TimeUnit.SECONDS).statusCode()).isEqualTo(201);
    for (int i = 1; i < POOL_SIZE; i++) {
      handler.gate("gated " + i).countDown();
    }
    for (CompletableFuture<HttpResponse<String>> request : holding) {
      assertThat(request.get(30, TimeUnit.SECONDS).statusCode()).isEqualTo(201);
    }
    assertThat(send(key, "next").get(30, TimeUnit.SECONDS).statusCode())
        .as("the refused request, retried").isEqualTo(201);
  }

  /**
   * Was: the commit's notification asked the pool for a second connection: on a pool held by
   * requests the 201 came a connect-timeout late, and the waiting duplicate got 409 after its
   * whole wait instead of the replay.
   */
  @Test
  void waitingDuplicate_poolHeldByRequests_getsTheReplayWhenTheFirstCommits() throws Exception {
    IdempotencyConfig config = transactional().onInFlight(IdempotencyConfig.InFlight.WAIT)
        .waitTimeout(Duration.ofSeconds(8)).build();
    Payments handler = start(config, null);
    String key = UUID.randomUUID().toString();
    CompletableFuture<HttpResponse<String>> first = send(key, "gated first");
    assertThat(handler.entered("gated first").await(20, TimeUnit.SECONDS)).isTrue();
    CompletableFuture<HttpResponse<String>> duplicate = send(key, "gated first");
    List<CompletableFuture<HttpResponse<String>>> others = new ArrayList<>();
    for (int i = 1; i < POOL_SIZE; i++) { // every other connection held by a request
      others.add(send(UUID.randomUUID().toString(), "gated " + i));
      assertThat(handler.entered("gated " + i).await(20, TimeUnit.SECONDS)).isTrue();
    }

    handler.gate("gated first").countDown();
    HttpResponse<String> firstAnswer = first.get(30, TimeUnit.SECONDS);
    long answered = System.nanoTime();
    HttpResponse<String> duplicateAnswer = duplicate.get(30, TimeUnit.SECONDS);
    Duration afterFirst = Duration.ofNanos(System.nanoTime() - answered);
    for (int i = 1; i < POOL_SIZE; i++) {
      handler.gate("gated " + i).countDown();
    }
    for (CompletableFuture<HttpResponse<String>> other : others) {
      other.get(30, TimeUnit.SECONDS);
    }

    assertThat(firstAnswer.statusCode()).isEqualTo(201);
    assertThat(duplicateAnswer.statusCode()).as(duplicateAnswer.body()).isEqualTo(201);
    assertThat(duplicateAnswer.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(duplicateAnswer.body()).isEqualTo(firstAnswer.body());
    // Woken by the commit's notification, not by its wait running out (8 s).
    assertThat(afterFirst).isLessThan(Duration.ofSeconds(6));
    assertThat(handler.runs.get()).isEqualTo(POOL_SIZE);
  }

  /** The key a release frees is claimable again at once: the node's connections are its own. */
  @Test
  void release_everyConnectionHeldByRequests_keyFreedForTheRetry() throws Exception {
    Payments handler = start(transactional().build(), null);
    List<CompletableFuture<HttpResponse<String>>> holding = new ArrayList<>();
    for (int i = 0; i < POOL_SIZE - 1; i++) {
      holding.add(send(UUID.randomUUID().toString(), "gated " + i));
      assertThat(handler.entered("gated " + i).await(20, TimeUnit.SECONDS)).isTrue();
    }
    String key = UUID.randomUUID().toString();
    assertThat(send(key, "fail").get(30, TimeUnit.SECONDS).statusCode()).isEqualTo(500);
    try (IdempotencyStore look = StoreBuilder.postgres(TestDatabase.dataSource()).tableName(table)
        .migrate(false).cacheMaxBytes(0).purgeInterval(Duration.ZERO).build()) {
      assertThat(look.claim(new IdempotencyKey("anonymous", key),
          new io.idemkey.store.Fingerprint(new byte[32])))
          .as("released: a claim of it acquires it").isInstanceOf(io.idemkey.store.ClaimResult.Acquired.class);
    }
    for (int i = 0; i < POOL_SIZE - 1; i++) {
      handler.gate("gated " + i).countDown();
    }
    for (CompletableFuture<HttpResponse<String>> request : holding) {
      assertThat(request.get(30, TimeUnit.SECONDS).statusCode()).isEqualTo(201);
    }
  }
}
