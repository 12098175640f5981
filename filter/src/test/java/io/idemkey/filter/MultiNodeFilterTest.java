package io.idemkey.filter;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.migrations.TableName;
import io.idemkey.store.ClaimResult;
import io.idemkey.store.Fingerprint;
import io.idemkey.store.ForwardingStore;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.MutableClock;
import io.idemkey.store.StoreBuilder;
import io.idemkey.store.TestDatabase;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Two filters, each in its own Jetty, on one PostgreSQL table: two application nodes. */
class MultiNodeFilterTest {

  final HttpClient client = HttpClient.newHttpClient();
  final MutableClock clock = MutableClock.atEpochDay();
  final TableName table = TestDatabase.freshTable();
  final List<AutoCloseable> closeables = new ArrayList<>();
  final List<IdempotencyListener.Event> events = new CopyOnWriteArrayList<>();
  final List<IdempotencyStore> stores = new ArrayList<>();

  @AfterEach
  void stop() throws Exception {
    for (AutoCloseable closeable : closeables) {
      closeable.close();
    }
  }

  /** A node: its own store (and pool) on the shared table, its own container and handler. */
  URI node(IdempotencyConfig config, TestHandler handler) throws Exception {
    return node(config, handler, UnaryOperator.identity());
  }

  /** A node whose store is seen through {@code view} (to count or watch its calls). */
  URI node(IdempotencyConfig config, TestHandler handler, UnaryOperator<IdempotencyStore> view)
      throws Exception {
    IdempotencyStore store =
        config.applyTo(StoreBuilder.postgres(TestDatabase.jdbcUrl(), TestDatabase.user(),
                TestDatabase.password()))
            .tableName(table)
            .migrate(false)
            .clock(clock)
            .purgeInterval(Duration.ZERO)
            .build();
    closeables.add(store);
    stores.add(store);
    JettyContainer container = new JettyContainer();
    container.start(
        IdempotencyFilter.builder().config(config).store(view.apply(store)).clock(clock)
            .listener(events::add).build(),
        handler);
    closeables.add(container);
    return container.uri();
  }

  HttpRequest post(URI node, String path, String key) {
    return HttpRequest.newBuilder(URI.create(node + path))
        .header("Idempotency-Key", key)
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString("{\"amount\":5}"))
        .build();
  }

  @Test
  void wait_duplicateOnAnotherNode_waitsAndGetsTheSameBytes() throws Exception {
    IdempotencyConfig config =
        IdempotencyConfig.builder().onInFlight(IdempotencyConfig.InFlight.WAIT).build();
    TestHandler first = new TestHandler("a");
    TestHandler second = new TestHandler("b");
    URI nodeA = node(config, first);
    URI nodeB = node(config, second);
    String key = UUID.randomUUID().toString();

    CompletableFuture<HttpResponse<byte[]>> slow =
        client.sendAsync(post(nodeA, "/p?delayMs=800", key), HttpResponse.BodyHandlers.ofByteArray());
    while (first.executions.get() == 0) {
      Thread.onSpinWait();
    }
    HttpResponse<byte[]> waited =
        client.send(post(nodeB, "/p?delayMs=800", key), HttpResponse.BodyHandlers.ofByteArray());

    assertThat(waited.statusCode()).isEqualTo(201);
    assertThat(waited.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(waited.body()).isEqualTo(slow.get().body());
    assertThat(first.executions.get() + second.executions.get()).isEqualTo(1);
  }

  // Regression: only a node in wait mode notified its completions, so a duplicate waiting on a
  // wait node for a request on a reject node slept until the holder's lease would have run out.
  @Test
  void wait_holderOnARejectNode_waiterOnAnotherNodeIsWokenByTheCompletion() throws Exception {
    Duration longerThanTheTest = Duration.ofMinutes(2);
    IdempotencyConfig reject = IdempotencyConfig.builder().lease(longerThanTheTest).build();
    IdempotencyConfig wait = IdempotencyConfig.builder().lease(longerThanTheTest)
        .onInFlight(IdempotencyConfig.InFlight.WAIT).waitTimeout(longerThanTheTest).build();
    TestHandler holder = new TestHandler("a");
    holder.gate = new CountDownLatch(1);
    AtomicInteger claimsOnB = new AtomicInteger();
    CountDownLatch listening = new CountDownLatch(1);
    AtomicReference<IdempotencyStore> storeB = new AtomicReference<>();
    URI nodeA = node(reject, holder);
    URI nodeB = node(wait, new TestHandler("b"), store -> {
      storeB.set(store);
      return new ForwardingStore(store) {
        @Override
        public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
          ClaimResult claim = super.claim(key, fingerprint);
          claimsOnB.incrementAndGet();
          return claim;
        }
      };
    });
    // Node B listens before anything waits (a connection coming up makes every waiter look).
    storeB.get().watch(new IdempotencyKey("test", "warm-up"), listening::countDown);
    assertThat(listening.await(30, TimeUnit.SECONDS)).isTrue();
    String key = UUID.randomUUID().toString();

    CompletableFuture<HttpResponse<byte[]>> first =
        client.sendAsync(post(nodeA, "/p?gate=1", key), HttpResponse.BodyHandlers.ofByteArray());
    while (holder.executions.get() == 0) {
      Thread.sleep(10);
    }
    CompletableFuture<HttpResponse<byte[]>> waiter =
        client.sendAsync(post(nodeB, "/p?gate=1", key), HttpResponse.BodyHandlers.ofByteArray());
    while (claimsOnB.get() < 2) { // its own claim, then its group's first look: in progress
      Thread.sleep(10);
    }
    holder.gate.countDown();

    // Woken by the completion: long before the lease or the wait would run out.
    HttpResponse<byte[]> replay = waiter.get(30, TimeUnit.SECONDS);
    assertThat(replay.statusCode()).isEqualTo(201);
    assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(replay.body()).isEqualTo(first.get(30, TimeUnit.SECONDS).body());
  }

  @Test
  void leaseRunsOut_anotherNodeTakesOver_staleCompletionNeverOverwrites() throws Exception {
    IdempotencyConfig config = IdempotencyConfig.builder().lease(Duration.ofSeconds(30)).build();
    TestHandler stale = new TestHandler("a");
    TestHandler takeover = new TestHandler("b");
    URI nodeA = node(config, stale);
    URI nodeB = node(config, takeover);
    String key = UUID.randomUUID().toString();

    CompletableFuture<HttpResponse<byte[]>> slow =
        client.sendAsync(post(nodeA, "/p?delayMs=1500", key), HttpResponse.BodyHandlers.ofByteArray());
    while (stale.executions.get() == 0) {
      Thread.onSpinWait();
    }
    // Node A is "paused" past its lease (as in a long GC): B takes the key over.
    clock.advance(Duration.ofSeconds(31));
    HttpResponse<byte[]> taken =
        client.send(post(nodeB, "/p?delayMs=1500", key), HttpResponse.BodyHandlers.ofByteArray());
    HttpResponse<byte[]> late = slow.get();

    assertThat(taken.statusCode()).isEqualTo(201);
    assertThat(late.statusCode()).isEqualTo(201);
    HttpResponse<byte[]> replay =
        client.send(post(nodeA, "/p?delayMs=1500", key), HttpResponse.BodyHandlers.ofByteArray());
    assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(replay.body()).isEqualTo(taken.body()).isNotEqualTo(late.body());
    for (int i = 0; i < 100 && events.size() < 3; i++) {
      Thread.sleep(20);
    }
    assertThat(events).extracting(IdempotencyListener.Event::outcome)
        .contains(IdempotencyListener.Outcome.STALE_COMPLETION);
  }

  HttpResponse<String> send(HttpRequest request) throws Exception {
    return client.send(request, HttpResponse.BodyHandlers.ofString());
  }

  static void assertProblem(HttpResponse<String> response, int status, String type) {
    assertThat(response.statusCode()).as(response.body()).isEqualTo(status);
    assertThat(response.headers().firstValue("Content-Type"))
        .hasValue("application/problem+json");
    assertThat(response.body()).contains("\"type\":\"urn:idemkey:problem:" + type + "\"");
  }

  @Test
  void sequenceKeys_keyNotANumber_is400InvalidKeyAndHandlerDoesNotRun() throws Exception {
    IdempotencyConfig config =
        IdempotencyConfig.builder().keys(IdempotencyConfig.Keys.SEQUENCE).build();
    TestHandler handler = new TestHandler("a");
    URI node = node(config, handler);

    for (String key : List.of("abc", "-1", "007", "1e3", "9223372036854775808",
        UUID.randomUUID().toString())) {
      assertProblem(send(post(node, "/p", key)), 400, "invalid-key");
    }
    assertThat(handler.executions.get()).isZero();
    assertThat(send(post(node, "/p", "9223372036854775807")).statusCode()).isEqualTo(201);
    assertThat(send(post(node, "/p", "0")).statusCode()).isEqualTo(201);
    assertThat(handler.executions.get()).isEqualTo(2);
  }

  @Test
  void sequenceKeys_afterTtlAndPurge_sameKeyIs409KeyExpiredOnBothNodes() throws Exception {
    IdempotencyConfig config =
        IdempotencyConfig.builder()
            .keys(IdempotencyConfig.Keys.SEQUENCE)
            .ttl(Duration.ofHours(1))
            .build();
    TestHandler first = new TestHandler("a");
    TestHandler second = new TestHandler("b");
    URI nodeA = node(config, first);
    URI nodeB = node(config, second);

    HttpResponse<String> created = send(post(nodeA, "/p", "7"));
    assertThat(created.statusCode()).isEqualTo(201);
    HttpResponse<String> replay = send(post(nodeB, "/p", "7"));
    assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(replay.body()).isEqualTo(created.body());
    clock.advance(Duration.ofMinutes(10));
    assertThat(send(post(nodeB, "/p", "9")).statusCode()).isEqualTo(201);
    clock.advance(Duration.ofMinutes(55)); // 7 has expired, 9 has not

    // Expired, not yet purged: already refused.
    assertProblem(send(post(nodeA, "/p", "7")), 409, "key-expired");
    assertThat(stores.get(1).purgeExpired()).isEqualTo(1);

    assertProblem(send(post(nodeA, "/p", "7")), 409, "key-expired");
    assertProblem(send(post(nodeB, "/p", "7")), 409, "key-expired");
    assertProblem(send(post(nodeB, "/p", "5")), 409, "key-expired"); // never sent, below 7
    assertThat(send(post(nodeA, "/p", "9")).headers().firstValue("Idempotent-Replayed"))
        .hasValue("true");
    assertThat(send(post(nodeA, "/p", "8")).statusCode()).isEqualTo(201); // above the floor
    // 7, 9 and 8 ran, once each.
    assertThat(first.executions.get() + second.executions.get()).isEqualTo(3);
    for (int i = 0; i < 100 && events.size() < 9; i++) {
      Thread.sleep(20);
    }
    assertThat(events).extracting(IdempotencyListener.Event::outcome)
        .filteredOn(IdempotencyListener.Outcome.KEY_EXPIRED::equals)
        .hasSize(4);
  }
}
