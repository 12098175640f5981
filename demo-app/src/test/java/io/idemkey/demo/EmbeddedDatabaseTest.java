package io.idemkey.demo;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.File;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 9, SPEC §11: the demo's embedded PostgreSQL keeps its data across restarts in the
 * directory it was given, runs durably, and does not outlive a JVM killed with SIGKILL. The demo
 * runs as a process of its own (its main class, on the test class path) with no database URL.
 */
class EmbeddedDatabaseTest {

  static final String PAYMENT = "{\"amount\": 1250, \"currency\": \"EUR\"}";

  @TempDir Path dir;
  final List<Process> demos = new ArrayList<>();
  final int databasePort = freePort();
  final HttpClient client =
      HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
  int launches;

  static int freePort() {
    try {
      return DemoNodes.freePort();
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  Path postgresDir() {
    return dir.resolve("data").resolve("postgres");
  }

  @AfterEach
  void stopAll() throws Exception {
    for (Process demo : demos) {
      demo.destroy();
    }
    for (Process demo : demos) {
      if (!demo.waitFor(60, TimeUnit.SECONDS)) {
        demo.destroyForcibly().waitFor();
      }
    }
    // A postmaster this test made (through the demo or pg_ctl) never outlives it.
    Optional<ProcessHandle> postmaster = postmaster();
    if (postmaster.isPresent()) {
      signal("-INT", postmaster.get().pid());
      postmaster.get().onExit().get(60, TimeUnit.SECONDS);
    }
  }

  /** The live postmaster named by the data directory's postmaster.pid. */
  Optional<ProcessHandle> postmaster() throws IOException {
    return EmbeddedDatabase.postmasterPid(postgresDir())
        .flatMap(ProcessHandle::of)
        .filter(ProcessHandle::isAlive);
  }

  static void signal(String signal, long pid) throws Exception {
    new ProcessBuilder("kill", signal, Long.toString(pid)).inheritIO().start().waitFor();
  }

  /** Starts the demo on the test's data directory and waits until it answers /health. */
  Process startDemo(int port, String... args) throws Exception {
    Process demo = launchDemo(port, args);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
    while (System.nanoTime() < deadline) {
      assertThat(demo.isAlive()).as("demo running; see %s", dir).isTrue();
      try {
        if (get(port, "/health").statusCode() == 200) {
          System.out.println("EmbeddedDatabaseTest: demo " + launches + " is up"); // progress
          return demo;
        }
      } catch (IOException notYet) {
        // still starting
      }
      Thread.sleep(200);
    }
    throw new AssertionError("demo did not become healthy; see " + dir);
  }

  /**
   * Starts the demo on the test's data directory, its embedded database on the test's port (the
   * same for every start, as the default fixed port would be), and returns at once.
   */
  Process launchDemo(int port, String... args) throws Exception {
    List<String> command = new ArrayList<>(List.of(
        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx192m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        "-cp", System.getProperty("java.class.path"), "io.idemkey.demo.DemoApp"));
    command.addAll(List.of(args));
    ProcessBuilder builder = new ProcessBuilder(command);
    builder.environment().keySet().removeIf(name -> name.startsWith("IDEMPOTENCY_"));
    builder.environment().put("PORT", Integer.toString(port));
    builder.environment().put("IDEMKEY_DEMO_DATA", dir.resolve("data").toString());
    builder.environment().put("DEMO_DB_PORT", Integer.toString(databasePort));
    builder.redirectErrorStream(true);
    builder.redirectOutput(new File(dir.toFile(), "demo-" + ++launches + ".log"));
    Process demo = builder.start();
    demos.add(demo);
    return demo;
  }

  HttpResponse<String> get(int port, String path) throws Exception {
    return client.send(
        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
            .timeout(Duration.ofSeconds(10)).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  HttpResponse<String> post(int port, String key) throws Exception {
    return client.send(
        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/payments"))
            .timeout(Duration.ofSeconds(30))
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(PAYMENT))
            .build(),
        HttpResponse.BodyHandlers.ofString());
  }

  String setting(String name) throws Exception {
    List<String> pid = Files.readAllLines(postgresDir().resolve("postmaster.pid"));
    try (Connection connection = DriverManager.getConnection(
            "jdbc:postgresql://localhost:" + pid.get(3).trim() + "/postgres", "postgres",
            "postgres");
        Statement statement = connection.createStatement();
        ResultSet row = statement.executeQuery("SHOW " + name)) {
      row.next();
      return row.getString(1);
    }
  }

  boolean gone(long pid, Duration within) throws InterruptedException {
    long deadline = System.nanoTime() + within.toNanos();
    while (System.nanoTime() < deadline) {
      if (ProcessHandle.of(pid).map(p -> !p.isAlive()).orElse(true)) {
        return true;
      }
      Thread.sleep(100);
    }
    return false;
  }

  String log(int launch) throws IOException {
    return Files.readString(dir.resolve("demo-" + launch + ".log"));
  }

  @Test
  void restart_keepsPayments_durable_andKillNineLeavesNoPostgres() throws Exception {
    int port = DemoNodes.freePort();
    Process first = startDemo(port);
    String url = "jdbc:postgresql://localhost:" + databasePort + "/postgres";
    assertThat(log(1)).contains("data directory: " + postgresDir(), "embedded PostgreSQL: " + url,
        "second node: PORT=" + (port + 1) + " IDEMPOTENCY_JDBC_URL=" + url);
    String key = UUID.randomUUID().toString();
    HttpResponse<String> created = post(port, key);
    assertThat(created.statusCode()).isEqualTo(201);
    String location = created.headers().firstValue("Location").orElseThrow();

    first.destroy(); // SIGTERM: a clean stop
    assertThat(first.waitFor(60, TimeUnit.SECONDS)).isTrue();
    assertThat(postmaster()).as("PostgreSQL stopped with the demo").isEmpty();

    Process second = startDemo(port);
    assertThat(log(2)).as("the same URL after a restart").contains("embedded PostgreSQL: " + url);
    assertThat(get(port, location).body()).isEqualTo(created.body());
    HttpResponse<String> replay = post(port, key);
    assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(setting("fsync")).isEqualTo("on");
    assertThat(setting("synchronous_commit")).isEqualTo("on");
    assertThat(setting("full_page_writes")).isEqualTo("on");

    long postmaster = postmaster().orElseThrow().pid();
    second.destroyForcibly().waitFor(); // SIGKILL: no shutdown hook runs
    assertThat(gone(postmaster, Duration.ofSeconds(10)))
        .as("postmaster %d stopped after its JVM was killed", postmaster).isTrue();

    // And the database recovers: the payment is still there.
    startDemo(port);
    assertThat(get(port, location).body()).isEqualTo(created.body());
  }

  @Test
  void postgresLeftRunningOnTheDirectory_isStoppedAndReplaced_cleanStartsAfresh() throws Exception {
    int port = DemoNodes.freePort();
    Process first = startDemo(port);
    HttpResponse<String> created = post(port, UUID.randomUUID().toString());
    String location = created.headers().firstValue("Location").orElseThrow();
    first.destroy();
    assertThat(first.waitFor(60, TimeUnit.SECONDS)).isTrue();

    // A postmaster on the directory with no JVM behind it, as a crash without the watchdog
    // would leave: started here with the binaries the demo unpacked.
    List<String> pgCtl = new ArrayList<>();
    if ("root".equals(System.getProperty("user.name"))) {
      pgCtl.addAll(List.of("unshare", "-U")); // PostgreSQL refuses root, as zonky knows too
    }
    pgCtl.addAll(List.of(pgCtl(postgresDir()).toString(), "-D", postgresDir().toString(),
        "-o", "-p " + DemoNodes.freePort(), "-w", "-l", dir.resolve("left.log").toString(),
        "start"));
    Process started = new ProcessBuilder(pgCtl)
        .redirectErrorStream(true)
        .redirectOutput(dir.resolve("pg_ctl.log").toFile())
        .start();
    assertThat(started.waitFor(60, TimeUnit.SECONDS)).isTrue();
    long leftOver = postmaster().orElseThrow().pid();

    startDemo(port);
    assertThat(gone(leftOver, Duration.ofSeconds(1))).as("left-over postmaster stopped").isTrue();
    assertThat(postmaster().orElseThrow().pid()).isNotEqualTo(leftOver);
    assertThat(get(port, location).statusCode()).isEqualTo(200);
    demos.get(demos.size() - 1).destroy();
    assertThat(demos.get(demos.size() - 1).waitFor(60, TimeUnit.SECONDS)).isTrue();

    startDemo(port, "--clean");
    assertThat(get(port, location).statusCode()).isEqualTo(404);
  }

  @Test
  void secondDemoOnTheSameDirectory_refusesInOneLine_firstKeepsItsDatabase() throws Exception {
    int port = DemoNodes.freePort();
    Process first = startDemo(port);
    long postmaster = postmaster().orElseThrow().pid();

    Process second = launchDemo(DemoNodes.freePort());
    assertThat(second.waitFor(120, TimeUnit.SECONDS)).as("the second demo ended").isTrue();
    assertThat(second.exitValue()).isEqualTo(1);
    List<String> lines = Files.readAllLines(dir.resolve("demo-2.log"));
    assertThat(lines).hasSize(1);
    assertThat(lines.get(0)).contains(
        "belongs to the demo running as pid " + first.pid(),
        "jdbc:postgresql://localhost:" + databasePort + "/postgres", "nothing was stopped",
        "IDEMPOTENCY_JDBC_URL=", "IDEMKEY_DEMO_DATA=");

    assertThat(postmaster().orElseThrow().pid()).as("the first demo's postmaster").isEqualTo(postmaster);
    assertThat(post(port, UUID.randomUUID().toString()).statusCode()).isEqualTo(201);
    assertThat(get(port, "/health").statusCode()).isEqualTo(200);
  }

  /** pg_ctl of the PostgreSQL binaries zonky unpacked under the temporary directory. */
  /**
   * The pg_ctl of the PostgreSQL that made {@code dataDirectory}: zonky unpacks each version it
   * is asked for beside the others (the suite runs more than one major version).
   */
  static Path pgCtl(Path dataDirectory) throws IOException {
    String major = Files.readString(dataDirectory.resolve("PG_VERSION")).trim();
    Path unpacked = Path.of(System.getProperty("java.io.tmpdir"), "embedded-pg");
    try (Stream<Path> files = Files.walk(unpacked, 3)) {
      return files.filter(p -> p.endsWith(Path.of("bin", "pg_ctl")))
          .filter(p -> versionOf(p).startsWith(major + "."))
          .findFirst().orElseThrow();
    }
  }

  private static String versionOf(Path pgCtl) {
    try {
      Process version = new ProcessBuilder(pgCtl.toString(), "--version").start();
      String out = new String(version.getInputStream().readAllBytes()).trim();
      version.waitFor();
      return out.substring(out.lastIndexOf(' ') + 1); // "pg_ctl (PostgreSQL) 17.6"
    } catch (IOException | InterruptedException e) {
      return "";
    }
  }
}
