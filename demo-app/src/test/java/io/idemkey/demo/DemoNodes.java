package io.idemkey.demo;

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
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A PostgreSQL that the test owns (durable: fsync and synchronous commit on, so that a stop and
 * start loses nothing that was acknowledged), or one the test runs itself and names by its URL
 * ({@link #on}), and demo nodes on it as separate JVM processes that the test can SIGKILL and
 * restart. Only processes started here are ever killed.
 *
 * <p>Thread-safe: the chaos thread kills and restarts nodes while client threads send requests.
 */
final class DemoNodes implements AutoCloseable {

  private final Path dir;
  private final int postgresPort;
  private final String jdbcUrl;
  private final List<String> nodeProperties;
  private final Map<Integer, Process> nodes = new ConcurrentHashMap<>();
  private final Map<Integer, Path> logs = new ConcurrentHashMap<>();
  private final AtomicInteger launches = new AtomicInteger();
  private final HttpClient client =
      HttpClient.newBuilder()
          .version(HttpClient.Version.HTTP_1_1)
          .connectTimeout(Duration.ofSeconds(2))
          .build();
  /** Null when the database is not this object's ({@link #on}). */
  private volatile EmbeddedPostgres postgres;

  /**
   * @param nodeProperties {@code -D} options given to every node, e.g. {@code
   *     -Didempotency.lease=2s}
   */
  DemoNodes(Path dir, String... nodeProperties) throws IOException {
    this.dir = dir;
    this.postgresPort = freePort();
    this.jdbcUrl = "jdbc:postgresql://localhost:" + postgresPort + "/postgres";
    this.nodeProperties = List.of(nodeProperties);
    startDatabase();
  }

  private DemoNodes(String jdbcUrl, Path dir, List<String> nodeProperties) {
    this.dir = dir;
    this.postgresPort = -1;
    this.jdbcUrl = jdbcUrl;
    this.nodeProperties = nodeProperties;
  }

  /** Nodes on a database that the test runs itself (user postgres), and stops itself. */
  static DemoNodes on(String jdbcUrl, Path dir, String... nodeProperties) {
    return new DemoNodes(jdbcUrl, dir, List.of(nodeProperties));
  }

  static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0)) {
      return socket.getLocalPort();
    }
  }

  /** Starts PostgreSQL on the same data directory and port as before. */
  synchronized void startDatabase() throws IOException {
    postgres =
        EmbeddedPostgres.builder()
            .setDataDirectory(dir.resolve("pg"))
            .setCleanDataDirectory(false)
            .setPort(postgresPort)
            // zonky starts PostgreSQL with -F (fsync off) and synchronous_commit=off; a later -c
            // overrides both, so a commit that a node acknowledged is on disk.
            .setServerConfig("fsync", "on")
            .setServerConfig("synchronous_commit", "on")
            .setServerConfig("full_page_writes", "on")
            // Each node opens up to pool-size + 3 connections for payments and as many for its
            // processor; killed nodes' sessions linger until PostgreSQL notices.
            .setServerConfig("max_connections", "300")
            .start();
  }

  /** Stops PostgreSQL (a fast shutdown: sessions are ended, open transactions roll back). */
  synchronized void stopDatabase() throws IOException {
    postgres.close();
  }

  /**
   * Freezes this object's PostgreSQL, as a database that hangs: SIGSTOP to its postmaster (found
   * by its port, which no other live server holds: pg_ctl detaches it), first, so that it forks no
   * backend after its children are listed, then to its children. Connections are still accepted
   * by the kernel; nothing answers. Returns what thaws it: SIGCONT to every process stopped.
   */
  synchronized AutoCloseable freezeDatabase() throws IOException, InterruptedException {
    if (postgres == null) {
      throw new IllegalStateException("the database is not this object's");
    }
    ProcessHandle postmaster = ProcessHandle.allProcesses()
        .filter(p -> p.info().commandLine().orElse("").contains("-p " + postgresPort + " "))
        .findFirst()
        .orElseThrow(() -> new IllegalStateException("no postmaster on port " + postgresPort));
    List<Long> stopped = new ArrayList<>(List.of(postmaster.pid()));
    signal("STOP", stopped);
    List<Long> children = postmaster.descendants().map(ProcessHandle::pid).toList();
    signal("STOP", children);
    stopped.addAll(children);
    return () -> signal("CONT", stopped);
  }

  /** Sends {@code signal} to processes of this object's PostgreSQL. */
  private static void signal(String signal, List<Long> pids)
      throws IOException, InterruptedException {
    if (pids.isEmpty()) {
      return;
    }
    List<String> command = new ArrayList<>(List.of("kill", "-" + signal));
    pids.forEach(pid -> command.add(Long.toString(pid)));
    int status = new ProcessBuilder(command).inheritIO().start().waitFor();
    if (status != 0) {
      throw new IOException(command + " ended with " + status);
    }
  }

  String jdbcUrl() {
    return jdbcUrl;
  }

  /** A connection of the test's own, outside every node. */
  Connection connect() throws SQLException {
    return DriverManager.getConnection(jdbcUrl(), "postgres", "postgres");
  }

  /** The first column of the one row {@code sql} answers, as a long. */
  long scalar(String sql, Object... parameters) throws SQLException {
    try (Connection connection = connect();
        PreparedStatement statement = connection.prepareStatement(sql)) {
      for (int i = 0; i < parameters.length; i++) {
        statement.setObject(i + 1, parameters[i]);
      }
      try (ResultSet row = statement.executeQuery()) {
        row.next();
        return row.getLong(1);
      }
    }
  }

  /** Starts a node process on {@code port} and returns without waiting for it. */
  Process launch(int port) throws IOException {
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    // Small and quick to start: the machine is shared, and nodes are restarted often.
    command.add("-Xmx192m");
    command.add("-XX:+UseSerialGC");
    command.add("-XX:TieredStopAtLevel=1");
    command.addAll(nodeProperties);
    command.add("-cp");
    command.add(System.getProperty("java.class.path"));
    command.add("io.idemkey.demo.DemoApp");
    ProcessBuilder builder = new ProcessBuilder(command);
    builder.environment().put("PORT", Integer.toString(port));
    builder.environment().put("IDEMPOTENCY_JDBC_URL", jdbcUrl());
    builder.environment().put("IDEMPOTENCY_JDBC_USERNAME", "postgres");
    builder.environment().put("IDEMPOTENCY_JDBC_PASSWORD", "postgres");
    builder.redirectErrorStream(true);
    File log = new File(dir.toFile(), "node-" + port + "-" + launches.incrementAndGet() + ".log");
    builder.redirectOutput(log);
    logs.put(port, log.toPath());
    Process process = builder.start();
    Process previous = nodes.put(port, process);
    if (previous != null) {
      previous.destroyForcibly();
    }
    return process;
  }

  /** Starts a node process on {@code port} and waits until it answers /health. */
  Process start(int port) throws Exception {
    Process process = launch(port);
    if (!awaitHealthy(port, Duration.ofSeconds(90))) {
      throw new AssertionError("node on port " + port + " did not become healthy; see " + dir);
    }
    return process;
  }

  /** Waits, at most {@code timeout}, until the node on {@code port} answers /health with 200. */
  boolean awaitHealthy(int port, Duration timeout) throws InterruptedException {
    return await(port, timeout, this::healthy);
  }

  /** Waits, at most {@code timeout}, until the node on {@code port} answers HTTP at all. */
  boolean awaitStarted(int port, Duration timeout) throws InterruptedException {
    return await(port, timeout, this::answers);
  }

  private boolean await(int port, Duration timeout, java.util.function.IntPredicate ready)
      throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (System.nanoTime() < deadline) {
      Process process = nodes.get(port);
      if (process == null || !process.isAlive()) {
        return false;
      }
      if (ready.test(port)) {
        return true;
      }
      Thread.sleep(100);
    }
    return false;
  }

  /** Whether the node on {@code port} answers /health with 200: up, and its database too. */
  boolean healthy(int port) {
    return healthStatus(port) == 200;
  }

  /**
   * Whether the node on {@code port} answers HTTP at all: it has started (it listens only once
   * its pool, table and filter are ready), whatever its database's state (503 when it is down).
   */
  boolean answers(int port) {
    return healthStatus(port) > 0;
  }

  private int healthStatus(int port) {
    try {
      return client
          .send(
              HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/health"))
                  // The node's check of its database is bounded by its connect timeout.
                  .timeout(Duration.ofSeconds(5))
                  .build(),
              HttpResponse.BodyHandlers.discarding())
          .statusCode();
    } catch (IOException e) {
      return -1;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return -1;
    }
  }

  /** What the node last started on {@code port} has written so far, for a failure's message. */
  String log(int port) {
    try {
      Path log = logs.get(port);
      return log == null ? "(never started)" : Files.readString(log);
    } catch (IOException e) {
      return "(log unreadable: " + e + ")";
    }
  }

  boolean alive(int port) {
    Process process = nodes.get(port);
    return process != null && process.isAlive();
  }

  /** SIGKILLs the node on {@code port} (a process this object started) and waits for its end. */
  void kill(int port) throws InterruptedException {
    Process process = nodes.get(port);
    if (process != null) {
      process.destroyForcibly().waitFor();
    }
  }

  Path dir() {
    return dir;
  }

  @Override
  public void close() throws IOException {
    for (Process process : nodes.values()) {
      process.destroyForcibly();
    }
    for (Process process : nodes.values()) {
      try {
        process.waitFor();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    if (postgres != null) {
      stopDatabase();
    }
  }
}
