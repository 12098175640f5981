package io.idemkey.demo;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.io.File;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;

/**
 * The demo's own PostgreSQL (SPEC §11), for when no database is given: its files stay in one
 * data directory across restarts, it runs with durable settings, and it does not outlive the JVM.
 *
 * <p>Zonky's builder would start a throw-away database (a fresh directory deleted on stop, fsync
 * and synchronous commit off) whose postmaster, started by {@code pg_ctl}, survives a {@code kill
 * -9} of the JVM. So here the directory is kept and reused, {@code fsync}, {@code
 * synchronous_commit} and {@code full_page_writes} are turned back on, a watchdog process stops
 * the postmaster once the JVM is gone, and a postmaster that an earlier run left behind on this
 * directory is stopped before a new one starts.
 *
 * <p>One demo owns the directory at a time: it holds a lock on {@code demo.lock} beside it (the
 * operating system releases it when the JVM ends, {@code kill -9} included) and writes there its
 * pid, its HTTP port and the database's URL. A second demo on the same directory finds the lock
 * taken, touches nothing and refuses with a line that says what to do; only a postmaster whose
 * owner is gone is stopped. It listens on a fixed port (so that other nodes keep their URL across
 * restarts), and PostgreSQL's own output goes to {@code postgres.log} beside the directory.
 *
 * <p>Not thread-safe: start and close from one thread.
 */
final class EmbeddedDatabase implements AutoCloseable {

  private static final String PID_FILE = "postmaster.pid";
  /** Beside the data directory: held locked by the demo that owns it. */
  static final String LOCK_FILE = "demo.lock";

  private final EmbeddedPostgres postgres;
  private final Path directory;
  private final Process watchdog;
  private final FileChannel lock;

  private EmbeddedDatabase(
      EmbeddedPostgres postgres, Path directory, Process watchdog, FileChannel lock) {
    this.postgres = postgres;
    this.directory = directory;
    this.watchdog = watchdog;
    this.lock = lock;
  }

  /**
   * Starts PostgreSQL on {@code directory}, creating the database there if it has none.
   *
   * @param port the port to listen on (0: any free port)
   * @param clean delete the directory's database first
   * @param httpPort the demo's HTTP port, recorded for a second demo's message
   * @throws DemoStartException if another demo owns the directory, or {@code port} is taken
   * @throws IOException if PostgreSQL cannot be started, or {@code clean} is asked of a
   *     directory that does not hold a PostgreSQL database
   */
  static EmbeddedDatabase start(Path directory, int port, boolean clean, int httpPort)
      throws IOException {
    Path dir = directory.toAbsolutePath().normalize();
    Files.createDirectories(dir.getParent());
    FileChannel lock = lock(dir, httpPort);
    EmbeddedPostgres postgres = null;
    try {
      stopLeftOver(dir);
      if (port != 0) {
        requireFree(port);
      }
      if (clean) {
        delete(dir);
      }
      Files.createDirectories(dir);
      ProcessBuilder.Redirect log =
          ProcessBuilder.Redirect.appendTo(dir.resolveSibling("postgres.log").toFile());
      postgres =
          EmbeddedPostgres.builder()
              .setDataDirectory(dir)
              .setCleanDataDirectory(false)
              .setPort(port)
              // initdb's and PostgreSQL's output to a file, not the demo's console.
              .setOutputRedirector(log)
              .setErrorRedirector(log)
              // The demo stops PostgreSQL itself, after requests in flight have finished.
              .setRegisterShutdownHook(false)
              // zonky starts PostgreSQL with -F (fsync off) and synchronous_commit=off; a later
              // -c overrides both, so that an acknowledged payment survives a crash.
              .setServerConfig("fsync", "on")
              .setServerConfig("synchronous_commit", "on")
              .setServerConfig("full_page_writes", "on")
              .start();
      long postmaster = postmasterPid(dir).orElseThrow(
          () -> new IOException("PostgreSQL started but wrote no " + dir.resolve(PID_FILE)));
      Process watchdog = startWatchdog(dir, postmaster);
      EmbeddedDatabase database = new EmbeddedDatabase(postgres, dir, watchdog, lock);
      String owner = "pid=" + ProcessHandle.current().pid() + "\nhttp-port=" + httpPort
          + "\nurl=" + database.jdbcUrl() + "\n";
      lock.truncate(0);
      lock.write(ByteBuffer.wrap(owner.getBytes(StandardCharsets.UTF_8)), 0);
      return database;
    } catch (IOException | RuntimeException e) {
      if (postgres != null) {
        postgres.close();
      }
      lock.close();
      throw e;
    }
  }

  /**
   * Locks {@code demo.lock} beside {@code dir} for this JVM's life.
   *
   * @throws DemoStartException if another demo holds it
   */
  private static FileChannel lock(Path dir, int httpPort) throws IOException {
    Path file = dir.resolveSibling(LOCK_FILE);
    FileChannel channel = FileChannel.open(file, StandardOpenOption.CREATE,
        StandardOpenOption.READ, StandardOpenOption.WRITE);
    FileLock held;
    try {
      held = channel.tryLock();
    } catch (OverlappingFileLockException e) {
      held = null; // another demo in this JVM (tests) holds it
    } catch (IOException | RuntimeException e) {
      channel.close();
      throw e;
    }
    if (held != null) {
      return channel;
    }
    channel.close();
    throw new DemoStartException(inUse(dir, Files.readAllLines(file), httpPort));
  }

  /** The refusal when {@code owner} (the lines of the lock file) runs a demo on {@code dir}. */
  static String inUse(Path dir, List<String> owner, int httpPort) {
    String pid = field(owner, "pid", "?");
    String url = field(owner, "url", null);
    String ownerPort = field(owner, "http-port", "");
    int port = ownerPort.equals(Integer.toString(httpPort)) ? httpPort + 1 : httpPort;
    return "the embedded database in " + dir + " belongs to the demo running as pid " + pid
        + (url == null ? " (still starting)" : " at " + url) + "; nothing was stopped. For a"
        + " second node on it: " + DemoApp.nodeCommand(port, url == null ? "<its URL>" : url)
        + "; for a database of its own: IDEMKEY_DEMO_DATA=<another directory> DEMO_DB_PORT=<another"
        + " port>";
  }

  private static String field(List<String> lines, String name, String fallback) {
    for (String line : lines) {
      if (line.startsWith(name + "=")) {
        return line.substring(name.length() + 1).trim();
      }
    }
    return fallback;
  }

  /** @throws DemoStartException if something listens on {@code port} of the loopback address */
  private static void requireFree(int port) throws IOException {
    try (ServerSocket probe = new ServerSocket(port, 1, InetAddress.getLoopbackAddress())) {
      probe.setReuseAddress(true);
    } catch (java.net.BindException e) {
      throw new DemoStartException("port " + port + ", the embedded database's, is taken by"
          + " another process; start the demo with DEMO_DB_PORT=<a free port> (0: any free port)");
    }
  }

  /** The URL of the database, without credentials: user postgres, password postgres. */
  String jdbcUrl() {
    return "jdbc:postgresql://localhost:" + postgres.getPort() + "/postgres";
  }

  Path directory() {
    return directory;
  }

  /**
   * Stops PostgreSQL (fast: sessions end, open transactions roll back), then the watchdog, then
   * gives up the directory.
   */
  @Override
  public void close() throws IOException {
    try {
      postgres.close();
    } finally {
      if (watchdog != null) {
        watchdog.destroy();
      }
      lock.close();
    }
  }

  /** The pid in the data directory's {@code postmaster.pid}, if there is one. */
  static Optional<Long> postmasterPid(Path dir) throws IOException {
    Path file = dir.resolve(PID_FILE);
    List<String> lines;
    try {
      lines = Files.readAllLines(file);
    } catch (java.nio.file.NoSuchFileException e) {
      return Optional.empty();
    }
    if (lines.isEmpty()) {
      return Optional.empty();
    }
    try {
      return Optional.of(Long.parseLong(lines.get(0).trim()));
    } catch (NumberFormatException e) {
      return Optional.empty();
    }
  }

  /**
   * A process of its own that waits for this JVM to end (however it ends, {@code kill -9}
   * included) and then asks the postmaster for a fast shutdown, if the data directory still names
   * it (so that a pid reused after a clean stop is never signalled). Null where there is no
   * {@code /bin/sh}.
   */
  private static Process startWatchdog(Path dir, long postmaster) throws IOException {
    if (!new File("/bin/sh").canExecute()) {
      System.out.println("no /bin/sh: PostgreSQL will outlive this JVM if it is killed");
      return null;
    }
    String script =
        "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done;"
            + " [ \"$(head -n 1 \"$3\" 2>/dev/null)\" = \"$2\" ] && kill -INT \"$2\"";
    return new ProcessBuilder(
            "/bin/sh", "-c", script, "idemkey-demo-watchdog",
            Long.toString(ProcessHandle.current().pid()), Long.toString(postmaster),
            dir.resolve(PID_FILE).toString())
        .redirectOutput(ProcessBuilder.Redirect.DISCARD)
        .redirectError(ProcessBuilder.Redirect.DISCARD)
        .start();
  }

  /**
   * Stops a postmaster that an earlier run left on {@code dir} (its JVM killed before the
   * watchdog could act, or a run without one): one whose {@code postmaster.pid} names a live
   * process whose command line names this directory. Called with the directory's lock held, so
   * the demo that started that postmaster is gone. Anything else is left alone.
   */
  private static void stopLeftOver(Path dir) throws IOException {
    Optional<Long> pid = postmasterPid(dir);
    if (pid.isEmpty()) {
      return;
    }
    Optional<ProcessHandle> process = ProcessHandle.of(pid.get());
    if (process.isEmpty() || !process.get().isAlive()) {
      return; // a stale file: PostgreSQL itself ignores it at start
    }
    String commandLine = process.get().info().commandLine().orElse("");
    if (!commandLine.contains(dir.toString())) {
      return; // the pid was reused by some other process
    }
    System.out.println("stopping PostgreSQL (pid " + pid.get() + ") left running on " + dir
        + " by an earlier run");
    try {
      new ProcessBuilder("kill", "-INT", Long.toString(pid.get()))
          .redirectErrorStream(true)
          .redirectOutput(ProcessBuilder.Redirect.DISCARD)
          .start()
          .waitFor();
      process.get().onExit().get(60, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while stopping PostgreSQL pid " + pid.get(), e);
    } catch (ExecutionException | TimeoutException e) {
      throw new IOException("PostgreSQL pid " + pid.get() + " on " + dir
          + " did not stop within 60 s; stop it, then start the demo again", e);
    }
  }

  /** Deletes the database in {@code dir}, refusing a directory that is not PostgreSQL's. */
  private static void delete(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) {
      return;
    }
    boolean empty;
    try (Stream<Path> entries = Files.list(dir)) {
      empty = entries.findAny().isEmpty();
    }
    if (!empty && !Files.exists(dir.resolve("PG_VERSION"))) {
      throw new IOException("--clean: " + dir + " does not hold a PostgreSQL database (no"
          + " PG_VERSION); not deleting it");
    }
    System.out.println("--clean: deleting the demo database in " + dir);
    try (Stream<Path> paths = Files.walk(dir)) {
      for (Path path : paths.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(path);
      }
    }
  }
}
