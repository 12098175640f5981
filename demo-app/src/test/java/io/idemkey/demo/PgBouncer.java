package io.idemkey.demo;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserPrincipalLookupService;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * A PgBouncer process of the test's own (Debian's package, 1.18 on the CI machine) in front of
 * one PostgreSQL, in transaction pooling: after each transaction, a client's server connection
 * may go to another client, as in a fleet that shares one primary through a pooler. It listens
 * on 127.0.0.1 only, on a free port, trusts every client (user postgres), and keeps its
 * configuration, log and pid file in a directory of its own, deleted on {@link #close()}.
 *
 * <p>PgBouncer refuses to run as root: as root it is started as {@code nobody} through {@code
 * setpriv}, which execs it, so that the process this object started, and stops by its pid, is
 * PgBouncer itself. Only that process is ever stopped.
 *
 * <p>Thread-safe: immutable once started.
 */
final class PgBouncer implements AutoCloseable {

  private static final List<Path> WELL_KNOWN = List.of(
      Path.of("/usr/sbin/pgbouncer"), Path.of("/usr/bin/pgbouncer"),
      Path.of("/usr/local/bin/pgbouncer"));

  private final Path dir;
  private final int port;
  private final Process process;

  private PgBouncer(Path dir, int port, Process process) {
    this.dir = dir;
    this.port = port;
    this.process = process;
  }

  /** The pgbouncer executable: on PATH, or where Debian's package puts it; empty when missing. */
  static Optional<Path> executable() {
    List<Path> candidates = new ArrayList<>();
    String path = System.getenv("PATH");
    if (path != null) {
      for (String entry : path.split(java.io.File.pathSeparator)) {
        if (!entry.isEmpty()) {
          candidates.add(Path.of(entry, "pgbouncer"));
        }
      }
    }
    candidates.addAll(WELL_KNOWN);
    return candidates.stream().filter(Files::isExecutable).findFirst();
  }

  /** Whether this JVM runs as root, where PgBouncer has to be started as another user. */
  static boolean root() {
    return "root".equals(System.getProperty("user.name"));
  }

  /** What it takes to start PgBouncer here, or why it cannot be; empty when it can. */
  static Optional<String> unavailable() {
    if (executable().isEmpty()) {
      return Optional.of("pgbouncer is not installed (Debian: apt-get install pgbouncer; .ci/run"
          + " installs it when it runs as root)");
    }
    if (root() && !Files.isExecutable(Path.of("/usr/bin/setpriv"))) {
      return Optional.of("running as root, and /usr/bin/setpriv (util-linux) is missing to start"
          + " pgbouncer as nobody (it refuses to run as root)");
    }
    return Optional.empty();
  }

  /**
   * Starts PgBouncer in transaction pooling in front of the PostgreSQL on 127.0.0.1:{@code
   * postgresPort}, as its database {@code postgres}, and waits until it accepts connections.
   *
   * @throws IOException when it cannot be started, or does not listen within 20 s (its log is
   *     in the message)
   */
  static PgBouncer start(int postgresPort) throws IOException, InterruptedException {
    Path executable = executable().orElseThrow(
        () -> new IOException(unavailable().orElse("pgbouncer not found")));
    // Not the test's @TempDir: JUnit makes it readable by its owner only, and PgBouncer runs as
    // nobody when the test runs as root.
    Path dir = Files.createTempDirectory("idemkey-pgbouncer-");
    int port = DemoNodes.freePort();
    Path ini = dir.resolve("pgbouncer.ini");
    Path users = dir.resolve("userlist.txt");
    Files.writeString(users, "\"postgres\" \"postgres\"\n");
    Files.writeString(ini, String.join("\n",
        "[databases]",
        "postgres = host=127.0.0.1 port=" + postgresPort + " dbname=postgres",
        "",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        "listen_port = " + port,
        "unix_socket_dir =",
        "auth_type = trust",
        "auth_file = " + users,
        "pool_mode = transaction",
        "max_client_conn = 500",
        "default_pool_size = 20",
        "logfile = " + dir.resolve("pgbouncer.log"),
        "pidfile = " + dir.resolve("pgbouncer.pid"),
        ""));
    List<String> command = new ArrayList<>();
    if (root()) {
      UserPrincipalLookupService names = dir.getFileSystem().getUserPrincipalLookupService();
      for (Path path : List.of(dir, ini, users)) {
        Files.setOwner(path, names.lookupPrincipalByName("nobody"));
      }
      Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
      // setpriv execs pgbouncer (runuser would fork and wait, and a SIGKILL of it would leave
      // pgbouncer running). nobody and nogroup: Debian's names.
      command.addAll(List.of("/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup",
          "--clear-groups"));
    }
    command.add(executable.toString());
    command.add(ini.toString());
    ProcessBuilder builder = new ProcessBuilder(command);
    builder.redirectErrorStream(true);
    // Written by this JVM (root's), outside the directory PgBouncer owns.
    builder.redirectOutput(dir.resolveSibling(dir.getFileName() + ".out").toFile());
    PgBouncer bouncer = new PgBouncer(dir, port, builder.start());
    try {
      bouncer.awaitListening(Duration.ofSeconds(20));
    } catch (IOException | InterruptedException | RuntimeException e) {
      bouncer.close();
      throw e;
    }
    return bouncer;
  }

  private void awaitListening(Duration timeout) throws IOException, InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (System.nanoTime() < deadline) {
      if (!process.isAlive()) {
        throw new IOException("pgbouncer ended with " + process.exitValue() + ": " + log());
      }
      try (Socket socket = new Socket()) {
        socket.connect(new InetSocketAddress("127.0.0.1", port), 500);
        return;
      } catch (IOException notYet) {
        Thread.sleep(100);
      }
    }
    throw new IOException("pgbouncer did not listen on 127.0.0.1:" + port + " within "
        + timeout.toSeconds() + " s: " + log());
  }

  int port() {
    return port;
  }

  /**
   * The JDBC URL of PostgreSQL's database {@code postgres} through this PgBouncer, as a user
   * writes it first: a node needs {@code ?prepareThreshold=0} added, as server-side prepared
   * statements do not survive a transaction here.
   */
  String jdbcUrl() {
    return "jdbc:postgresql://127.0.0.1:" + port + "/postgres";
  }

  /**
   * What PgBouncer has logged so far: its log file, or, when it ended before opening it, what it
   * wrote to stderr (which repeats the log file otherwise).
   */
  String log() {
    Path file = dir.resolve("pgbouncer.log");
    if (!Files.exists(file)) {
      file = dir.resolveSibling(dir.getFileName() + ".out");
    }
    try {
      return Files.readString(file);
    } catch (IOException e) {
      return "(" + file + " unreadable: " + e + ")";
    }
  }

  /**
   * Stops PgBouncer by its pid (SIGTERM, then SIGKILL after 10 s) and deletes its directory.
   */
  @Override
  public void close() throws IOException {
    process.destroy();
    try {
      if (!process.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor(10, java.util.concurrent.TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      process.destroyForcibly();
      Thread.currentThread().interrupt();
    }
    Files.deleteIfExists(dir.resolveSibling(dir.getFileName() + ".out"));
    try (Stream<Path> files = Files.walk(dir)) {
      for (Path file : files.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(file);
      }
    }
  }
}
