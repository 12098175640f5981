package io.idemkey.demo;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 23 on demo nodes with sequence keys, as processes on a PostgreSQL the test owns, every
 * node charging at the card processor of one node that is never killed (as StepsDemoTest does).
 * Items 1 and 2: a node with the other keys refuses to start; a key whose node was killed after
 * its charge was stored is retried after a higher key was purged, and pays once.
 */
class SequenceKeysDemoTest {

  /** Long enough that key 7's charge, stored {@link #GAP} after key 8, outlives 8's purge. */
  static final Duration TTL = Duration.ofSeconds(20);
  static final Duration GAP = Duration.ofSeconds(8);

  @TempDir Path dir;
  DemoNodes cluster;
  int processorPort;
  final HttpClient client =
      HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

  @BeforeEach
  void startCluster() throws Exception {
    processorPort = DemoNodes.freePort();
    cluster = new DemoNodes(dir, "-Didempotency.keys=sequence",
        "-Didempotency.ttl=" + TTL.toSeconds() + "s", "-Didempotency.lease=2s",
        "-Didempotency.completion-timeout=2s", "-Didempotency.purge.interval=1s",
        "-Didempotency.jdbc.connect-timeout=500ms",
        "-Ddemo.processor-url=http://127.0.0.1:" + processorPort + "/processor");
    cluster.start(processorPort);
  }

  @AfterEach
  void stopAll() throws Exception {
    cluster.close();
  }

  HttpResponse<String> post(int port, String query, String key, long amount) throws Exception {
    return client.send(
        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/payments" + query))
            .timeout(Duration.ofSeconds(30))
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(
                "{\"amount\": " + amount + ", \"currency\": \"EUR\"}"))
            .build(),
        HttpResponse.BodyHandlers.ofString());
  }

  void awaitScalar(long expected, Duration timeout, String sql, Object... parameters)
      throws Exception {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (System.nanoTime() < deadline) {
      if (cluster.scalar(sql, parameters) == expected) {
        return;
      }
      Thread.sleep(50);
    }
    throw new AssertionError("never " + expected + " within " + timeout + ": " + sql);
  }

  @Test
  void opaqueNodeBesideSequenceNodes_refusesToStartNamingIdempotencyKeys() throws Exception {
    Path opaqueDir = Files.createDirectories(dir.resolve("opaque"));
    try (DemoNodes opaque = DemoNodes.on(cluster.jdbcUrl(), opaqueDir,
        "-Didempotency.jdbc.connect-timeout=500ms")) {
      int port = DemoNodes.freePort();
      Process node = opaque.launch(port);

      assertThat(node.waitFor(90, TimeUnit.SECONDS)).as("the node ended").isTrue();
      assertThat(node.exitValue()).isEqualTo(1);
      assertThat(opaque.log(port)).contains("idemkey demo: idempotency.keys: this node's keys"
          + " are opaque, but table public.idempotency_keys is used with sequence keys");
    }
    assertThat(cluster.healthy(processorPort)).as("the sequence node goes on").isTrue();
  }

  @Test
  void deadNodesKeyRetriedAfterHigherKeyWasPurged_runsAndPaysOnce() throws Exception {
    int doomed = DemoNodes.freePort();
    int other = DemoNodes.freePort();
    cluster.start(doomed);
    cluster.start(other);
    long amount = 8023;

    HttpResponse<String> eight = post(other, "", "8", 1);
    assertThat(eight.statusCode()).as(eight.body()).isEqualTo(201);
    Thread.sleep(GAP.toMillis()); // 8's record expires GAP before 7's charge step does
    // delayMs: the handler sleeps after its charge step and before its payment insert.
    CompletableFuture<HttpResponse<String>> seven = CompletableFuture.supplyAsync(() -> {
      try {
        return post(doomed, "?delayMs=6000", "7", amount);
      } catch (Exception e) {
        return null; // the node was killed under the request
      }
    });
    awaitScalar(1, Duration.ofSeconds(20),
        "SELECT count(*) FROM idempotency_keys_steps WHERE idem_key = '7'");
    cluster.kill(doomed);
    assertThat(seven.get(10, TimeUnit.SECONDS)).as("the client's connection broke").isNull();
    // 8 expires and the purge raises the floor past 7, whose node is dead.
    awaitScalar(8, TTL.plusSeconds(20),
        "SELECT coalesce(max(floor), 0) FROM idempotency_keys_floors");

    HttpResponse<String> retried = post(other, "?delayMs=6000", "7", amount);

    assertThat(retried.statusCode()).as("retry of 7: %s", retried.body()).isEqualTo(201);
    assertThat(retried.headers().firstValue("Idempotent-Replayed")).as("ran, not replayed")
        .isEmpty();
    assertThat(cluster.scalar("SELECT count(*) FROM charges WHERE amount = ?", amount))
        .as("charges").isEqualTo(1);
    assertThat(cluster.scalar("SELECT count(*) FROM payments WHERE amount = ?", amount))
        .as("payments").isEqualTo(1);
    HttpResponse<String> again = post(other, "?delayMs=6000", "7", amount);
    assertThat(again.headers().firstValue("Idempotent-Replayed")).hasValue("true");
  }
}
