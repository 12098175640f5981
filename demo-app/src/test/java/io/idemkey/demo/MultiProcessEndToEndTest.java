package io.idemkey.demo;

import static org.assertj.core.api.Assertions.assertThat;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.io.File;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Demo nodes as separate JVM processes on one PostgreSQL that the test owns, so that it can kill
 * nodes and stop the database.
 */
class MultiProcessEndToEndTest {

  static final String PAYMENT = "{\"amount\": 1250, \"currency\": \"EUR\"}";

  @TempDir Path dir;
  final HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
  final List<Process> nodes = new ArrayList<>();
  EmbeddedPostgres postgres;
  int postgresPort;

  @BeforeEach
  void startDatabase() throws IOException {
    postgresPort = freePort();
    postgres = startPostgres();
  }

  @AfterEach
  void stopAll() throws IOException {
    for (Process node : nodes) {
      node.destroyForcibly();
    }
    postgres.close();
  }

  EmbeddedPostgres startPostgres() throws IOException {
    return EmbeddedPostgres.builder()
        .setDataDirectory(dir.resolve("pg"))
        .setCleanDataDirectory(false)
        .setPort(postgresPort)
        .start();
  }

  static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0)) {
      return socket.getLocalPort();
    }
  }

  /** Starts a node process on {@code port} and waits until it answers /health. */
  Process startNode(int port, String lease) throws Exception {
    ProcessBuilder builder =
        new ProcessBuilder(
            Path.of(System.getProperty("java.home"), "bin", "java").toString(),
            "-cp", System.getProperty("java.class.path"),
            "io.idemkey.demo.DemoApp");
    builder.environment().put("PORT", Integer.toString(port));
    builder.environment().put("IDEMPOTENCY_JDBC_URL",
        "jdbc:postgresql://localhost:" + postgresPort + "/postgres");
    builder.environment().put("IDEMPOTENCY_JDBC_USERNAME", "postgres");
    builder.environment().put("IDEMPOTENCY_JDBC_PASSWORD", "postgres");
    builder.environment().put("IDEMPOTENCY_LEASE", lease);
    builder.environment().put("IDEMPOTENCY_JDBC_CONNECT_TIMEOUT", "500ms");
    builder.redirectErrorStream(true);
    builder.redirectOutput(new File(dir.toFile(), "node-" + port + ".log"));
    Process process = builder.start();
    nodes.add(process);
    for (int i = 0; i < 150; i++) {
      try {
        if (get(port, "/health").statusCode() == 200) {
          System.out.println("MultiProcessEndToEndTest: node on port " + port + " is up"); // progress
          return process;
        }
      } catch (IOException notYet) {
        // still starting
      }
      assertThat(process.isAlive()).as("node on port %d is running", port).isTrue();
      Thread.sleep(100);
    }
    throw new AssertionError("node on port " + port + " did not become healthy");
  }

  HttpResponse<String> post(int port, String path, String key) throws Exception {
    return client.send(
        HttpRequest.newBuilder(URI.create("http://localhost:" + port + path))
            .timeout(Duration.ofSeconds(30))
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(PAYMENT))
            .build(),
        HttpResponse.BodyHandlers.ofString());
  }

  HttpResponse<String> get(int port, String path) throws Exception {
    return client.send(
        HttpRequest.newBuilder(URI.create("http://localhost:" + port + path))
            .timeout(Duration.ofSeconds(10))
            .build(),
        HttpResponse.BodyHandlers.ofString());
  }

  long stat(int port, String name) throws Exception {
    Matcher value = Pattern.compile("\"" + name + "\":(\\d+)").matcher(get(port, "/stats").body());
    assertThat(value.find()).isTrue();
    return Long.parseLong(value.group(1));
  }

  @Test
  void threeNodes_oneKeyAtOnce_exactlyOnePayment() throws Exception {
    int[] ports = {freePort(), freePort(), freePort()};
    for (int port : ports) {
      startNode(port, "30s");
    }
    String key = UUID.randomUUID().toString();
    int clients = 12;
    CyclicBarrier barrier = new CyclicBarrier(clients);
    ExecutorService pool = Executors.newFixedThreadPool(clients);
    try {
      List<Future<HttpResponse<String>>> answers = new ArrayList<>();
      for (int i = 0; i < clients; i++) {
        int port = ports[i % ports.length];
        answers.add(pool.submit(() -> {
          barrier.await();
          return post(port, "/payments?delayMs=1000", key);
        }));
      }
      String created = null;
      for (Future<HttpResponse<String>> answer : answers) {
        HttpResponse<String> response = answer.get();
        assertThat(response.statusCode()).isIn(201, 409);
        if (response.statusCode() == 201) {
          created = created == null ? response.body() : created;
          assertThat(response.body()).isEqualTo(created);
        }
      }
    } finally {
      pool.shutdownNow();
    }
    assertThat(stat(ports[0], "payments")).isEqualTo(1);
  }

  @Test
  void nodeKilledWhileHoldingKey_anotherTakesOverAfterLease_paymentOnce() throws Exception {
    int first = freePort();
    int second = freePort();
    Process doomed = startNode(first, "2s");
    startNode(second, "2s");
    String key = UUID.randomUUID().toString();

    CompletableFuture<HttpResponse<String>> lost = CompletableFuture.supplyAsync(() -> {
      try {
        return post(first, "/payments?delayMs=3000", key);
      } catch (Exception e) {
        return null;
      }
    });
    for (int i = 0; i < 100 && stat(first, "executions") == 0; i++) {
      Thread.sleep(50);
    }
    doomed.destroyForcibly().waitFor();
    lost.cancel(true);

    // The client retries the same request; the lease (2 s) has to run out first.
    HttpResponse<String> retried = null;
    for (int i = 0; i < 100; i++) {
      retried = post(second, "/payments?delayMs=3000", key);
      if (retried.statusCode() != 409) {
        break;
      }
      Thread.sleep(100);
    }
    assertThat(retried.statusCode()).isEqualTo(201);
    assertThat(post(second, "/payments?delayMs=3000", key).body()).isEqualTo(retried.body());
    assertThat(stat(second, "payments")).isEqualTo(1);
  }

  @Test
  void databaseStoppedAndStarted_503ThenServesWithoutRestart_keysKept() throws Exception {
    int port = freePort();
    startNode(port, "30s");
    String before = UUID.randomUUID().toString();
    HttpResponse<String> stored = post(port, "/payments", before);
    assertThat(stored.statusCode()).isEqualTo(201);

    postgres.close();
    HttpResponse<String> down = post(port, "/payments", UUID.randomUUID().toString());
    assertThat(down.statusCode()).isEqualTo(503);
    assertThat(down.headers().firstValue("Content-Type")).hasValue("application/problem+json");
    assertThat(down.body()).contains("urn:idemkey:problem:store-unavailable");

    postgres = startPostgres();
    HttpResponse<String> replay = null;
    for (int i = 0; i < 100; i++) {
      replay = post(port, "/payments", before);
      if (replay.statusCode() != 503) {
        break;
      }
      Thread.sleep(100);
    }
    assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(replay.body()).isEqualTo(stored.body());
    // The replay may come from the node's cache before its pools have reconnected: a new key
    // needs the database, and gets it once the pools are back, still without a restart.
    String after = UUID.randomUUID().toString();
    HttpResponse<String> paid = post(port, "/payments", after);
    for (int i = 0; i < 100 && paid.statusCode() == 503; i++) {
      Thread.sleep(100);
      paid = post(port, "/payments", after);
    }
    assertThat(paid.statusCode()).isEqualTo(201);
  }

  @Test
  void nodeRestarted_storedKeysStillReplay() throws Exception {
    int port = freePort();
    Process node = startNode(port, "30s");
    String key = UUID.randomUUID().toString();
    HttpResponse<String> stored = post(port, "/payments", key);

    node.destroy();
    node.waitFor();
    startNode(port, "30s");

    HttpResponse<String> replay = post(port, "/payments", key);
    assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(replay.body()).isEqualTo(stored.body());
    assertThat(stat(port, "payments")).isEqualTo(1);
  }
}
