package io.idemkey.store;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

/**
 * A PostgreSQL primary with a streaming standby, both run by the test from the embedded binaries
 * (SPEC §14). The embedded binaries have no {@code pg_basebackup}, so the primary and the standby
 * are copies of one data directory, stopped cleanly once after {@code initdb}, the standby's with
 * {@code standby.signal} and a {@code primary_conninfo}. Both are durable (fsync and synchronous
 * commit on, as a production server); with {@code synchronous}, the primary's commits wait until
 * the standby has flushed them ({@code synchronous_standby_names}).
 *
 * <p>{@link #killPrimary()} SIGKILLs the primary's postmaster and its children, found by the pid
 * in its own {@code postmaster.pid}, as a machine that dies; {@link #promoteStandby()} makes the
 * standby the primary. {@link #close()} stops both and leaves no postmaster behind. Only
 * processes started here are ever killed.
 *
 * <p>Thread-safe.
 */
public final class PrimaryAndStandby implements AutoCloseable {

  /** The standby's {@code application_name}, as the primary's replication views show it. */
  static final String STANDBY_NAME = "idemkey_standby";
  private static final Duration WAIT = Duration.ofSeconds(30);
  /** Left out of a copy: the lock and pid files of the server that ran on the original. */
  private static final Set<String> NOT_COPIED =
      Set.of("postmaster.pid", "postmaster.opts", "epg-lock");
  /** See {@link #template()}. */
  private static Path template;

  private final Path primaryDirectory;
  private final Path standbyDirectory;
  private final int primaryPort;
  private final int standbyPort;
  private final boolean synchronous;
  /** The postmasters started here (a handle knows its process's start time: no reused pid). */
  private final List<ProcessHandle> postmasters = new ArrayList<>();
  /** Stops both if the JVM exits without {@link #close()}: no postmaster outlives it. */
  private final Thread closeAtExit = new Thread(this::close, "primary-and-standby-close");
  private EmbeddedPostgres primary;
  private EmbeddedPostgres standby;
  private boolean primaryKilled;

  private PrimaryAndStandby(Path dir, boolean synchronous) throws IOException {
    Files.createDirectories(dir);
    this.primaryDirectory = dir.resolve("primary");
    this.standbyDirectory = dir.resolve("standby");
    this.primaryPort = freePort();
    this.standbyPort = freePort();
    this.synchronous = synchronous;
  }

  /**
   * Starts a primary in {@code dir/primary} and a standby in {@code dir/standby}, and waits until
   * the standby streams (and, with {@code synchronous}, is the primary's synchronous standby).
   */
  public static PrimaryAndStandby start(Path dir, boolean synchronous) throws IOException {
    PrimaryAndStandby pair = new PrimaryAndStandby(dir, synchronous);
    Runtime.getRuntime().addShutdownHook(pair.closeAtExit);
    try {
      pair.startBoth();
      return pair;
    } catch (IOException | RuntimeException | Error e) {
      pair.close();
      throw e;
    }
  }

  private void startBoth() throws IOException {
    Path template = template();
    copy(template, primaryDirectory);
    copy(template, standbyDirectory);
    Files.writeString(standbyDirectory.resolve("standby.signal"), "");
    Files.writeString(standbyDirectory.resolve("postgresql.auto.conf"),
        "primary_conninfo = 'host=127.0.0.1 port=" + primaryPort + " user=postgres"
            + " application_name=" + STANDBY_NAME + "'\n",
        StandardOpenOption.APPEND);
    primary = server(primaryDirectory, primaryPort, synchronous).start();
    postmasters.add(postmaster(primaryDirectory));
    standby = server(standbyDirectory, standbyPort, false).start();
    postmasters.add(postmaster(standbyDirectory));
    awaitStreaming();
  }

  /**
   * A data directory after {@code initdb}, started and stopped cleanly once, so consistent and
   * fit to be copied as it is: made once per JVM (initdb is the slow part of a start), deleted at
   * exit. Each pair's primary and standby are copies of it.
   */
  private static synchronized Path template() throws IOException {
    if (template == null) {
      Path dir = Files.createTempDirectory("idemkey-primary-template");
      Runtime.getRuntime().addShutdownHook(new Thread(() -> deleteQuietly(dir)));
      Path data = dir.resolve("data");
      server(data, freePort(), false).start().close();
      template = data;
    }
    return template;
  }

  private static void deleteQuietly(Path dir) {
    try (Stream<Path> files = Files.walk(dir)) {
      files.sorted(Comparator.reverseOrder()).forEach(file -> file.toFile().delete());
    } catch (IOException e) {
      // the JVM exits; a temporary directory is left
    }
  }

  /** The server's log, beside its data directory. */
  private static Path log(Path data) {
    return data.resolveSibling(data.getFileName() + ".log");
  }

  /** What the standby has logged so far (its errors, for one). */
  public String standbyLog() throws IOException {
    return Files.readString(log(standbyDirectory));
  }

  private static EmbeddedPostgres.Builder server(Path data, int port, boolean synchronous) {
    ProcessBuilder.Redirect log = ProcessBuilder.Redirect.appendTo(log(data).toFile());
    EmbeddedPostgres.Builder server = EmbeddedPostgres.builder()
        .setDataDirectory(data)
        .setOutputRedirector(log)
        .setErrorRedirector(log)
        .setCleanDataDirectory(false)
        .setPort(port)
        .setPGStartupWait(WAIT)
        .setRegisterShutdownHook(false)
        // zonky starts PostgreSQL with -F (fsync off) and synchronous_commit=off; a later -c
        // overrides both, so that a commit the primary acknowledged is on disk.
        .setServerConfig("fsync", "on")
        .setServerConfig("synchronous_commit", "on")
        .setServerConfig("full_page_writes", "on")
        .setServerConfig("wal_keep_size", "256MB");
    // On the command line, not in the data directory that the standby copies: once promoted,
    // with no standby of its own, the standby's commits must not wait for one.
    return synchronous ? server.setServerConfig("synchronous_standby_names", STANDBY_NAME) : server;
  }

  private static void copy(Path from, Path to) throws IOException {
    try (Stream<Path> files = Files.walk(from)) {
      for (Path file : (Iterable<Path>) files::iterator) {
        if (NOT_COPIED.contains(file.getFileName().toString()) && !file.equals(from)) {
          continue;
        }
        // With its permissions: PostgreSQL refuses a data directory that others may read.
        Files.copy(file, to.resolve(from.relativize(file).toString()),
            StandardCopyOption.COPY_ATTRIBUTES);
      }
    }
  }

  /** Waits until the standby streams from the primary, as its synchronous standby if asked. */
  private void awaitStreaming() throws IOException {
    long deadline = System.nanoTime() + WAIT.toNanos();
    String last = "no standby connected";
    while (System.nanoTime() < deadline) {
      try (Connection connection = connect(primaryPort);
          Statement statement = connection.createStatement();
          ResultSet row = statement.executeQuery(
              "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = '"
                  + STANDBY_NAME + "'")) {
        if (row.next()) {
          last = row.getString(1) + "/" + row.getString(2);
          if ("streaming".equals(row.getString(1))
              && (!synchronous || "sync".equals(row.getString(2)))) {
            return;
          }
        }
      } catch (SQLException e) {
        last = e.getMessage();
      }
      sleep(50);
    }
    throw new IOException("the standby did not stream within " + WAIT + ": " + last);
  }

  /** A JDBC URL that lists the primary, then the standby, with {@code targetServerType}. */
  public String url(String targetServerType) {
    return "jdbc:postgresql://127.0.0.1:" + primaryPort + ",127.0.0.1:" + standbyPort
        + "/postgres?targetServerType=" + targetServerType;
  }

  /** The URL an application uses: both hosts, the primary targeted. */
  public String url() {
    return url("primary");
  }

  /** A JDBC URL of the standby alone, whatever its role. */
  public String standbyUrl() {
    return "jdbc:postgresql://127.0.0.1:" + standbyPort + "/postgres";
  }

  /** Waits until the standby has applied every change the primary has written so far. */
  public void awaitStandbyCaughtUp() throws SQLException {
    String written;
    try (Connection connection = connect(primaryPort);
        Statement statement = connection.createStatement();
        ResultSet lsn = statement.executeQuery("SELECT pg_current_wal_lsn()::text")) {
      lsn.next();
      written = lsn.getString(1);
    }
    long deadline = System.nanoTime() + WAIT.toNanos();
    try (Connection connection = connect(standbyPort);
        PreparedStatement statement = connection.prepareStatement(
            "SELECT pg_last_wal_replay_lsn() >= ?::pg_lsn")) {
      statement.setString(1, written);
      while (true) {
        try (ResultSet caughtUp = statement.executeQuery()) {
          caughtUp.next();
          if (caughtUp.getBoolean(1)) {
            return;
          }
        }
        if (System.nanoTime() > deadline) {
          throw new SQLException("the standby did not apply up to " + written + " in " + WAIT);
        }
        sleep(10);
      }
    }
  }

  public int primaryPort() {
    return primaryPort;
  }

  public int standbyPort() {
    return standbyPort;
  }

  /** A connection of the test's own to the server on {@code port}, whatever its role. */
  public static Connection connect(int port) throws SQLException {
    return DriverManager.getConnection(
        "jdbc:postgresql://127.0.0.1:" + port + "/postgres?connectTimeout=5", "postgres",
        "postgres");
  }

  /**
   * Stops (SIGSTOP) the primary's WAL sender to the standby: from now on the standby receives
   * nothing, as a standby that has fallen behind (a slow link, a busy standby). Commits that wait
   * for a synchronous standby wait; asynchronous ones are acknowledged all the same. The WAL not
   * sent stays in the primary's files, not in a socket's buffers, so {@link #killPrimary()} (which
   * kills the stopped sender with the rest) loses it for the standby.
   */
  public synchronized void pauseReplication() throws Exception {
    long sender;
    try (Connection connection = connect(primaryPort);
        Statement statement = connection.createStatement();
        ResultSet row = statement.executeQuery(
            "SELECT pid FROM pg_stat_replication WHERE application_name = '" + STANDBY_NAME
                + "'")) {
      if (!row.next()) {
        throw new IllegalStateException("no WAL sender to " + STANDBY_NAME);
      }
      sender = row.getLong(1);
    }
    // Only a process of the primary started here is ever signalled.
    if (postmasters.get(0).children().noneMatch(child -> child.pid() == sender)) {
      throw new IllegalStateException("process " + sender + " is not the primary's");
    }
    PostgresStoreHardeningTest.signal(List.of(sender), "STOP");
  }

  /**
   * SIGKILLs the primary's postmaster and every process it started, at once, and waits until they
   * are gone: nothing more is flushed, nothing more is sent to the standby.
   */
  public synchronized void killPrimary() {
    ProcessHandle postmaster = postmasters.get(0);
    List<ProcessHandle> processes = new ArrayList<>();
    processes.add(postmaster);
    postmaster.descendants().forEach(processes::add);
    primaryKilled = true;
    processes.forEach(ProcessHandle::destroyForcibly);
    awaitExit(processes);
  }

  /**
   * Starts the primary again on its data directory after {@link #killPrimary()}, as a machine
   * that reboots: PostgreSQL recovers from its write-ahead log, which holds what was flushed.
   */
  public synchronized void restartPrimary() throws IOException {
    try {
      primary.close(); // its server is dead (pg_ctl stop finds nothing); this lets go of its lock
    } catch (IOException e) {
      // pg_ctl stop failed on the dead server: the lock is let go all the same
    }
    primary = server(primaryDirectory, primaryPort, synchronous).start();
    postmasters.set(0, postmaster(primaryDirectory));
    primaryKilled = false;
  }

  /** Promotes the standby, and returns once it accepts writes. */
  public void promoteStandby() throws SQLException {
    try (Connection connection = connect(standbyPort);
        Statement statement = connection.createStatement();
        ResultSet promoted = statement.executeQuery(
            "SELECT pg_promote(true, " + WAIT.toSeconds() + ")")) {
      if (!promoted.next() || !promoted.getBoolean(1)) {
        throw new SQLException("the standby was not promoted within " + WAIT);
      }
    }
  }

  /** Whether any postmaster started here still runs. */
  public synchronized boolean anyPostmasterAlive() {
    return postmasters.stream().anyMatch(PrimaryAndStandby::running);
  }

  /** The postmaster that runs on {@code data}, by its {@code postmaster.pid}. */
  private static ProcessHandle postmaster(Path data) throws IOException {
    long pid = postmasterPid(data);
    ProcessHandle postmaster = ProcessHandle.of(pid)
        .orElseThrow(() -> new IOException("no process " + pid + " (postmaster of " + data + ")"));
    if (!postmaster.info().commandLine().orElse("").contains(data.toString())) {
      throw new IOException("process " + pid + " is not the postmaster of " + data);
    }
    return postmaster;
  }

  /** Waits until every one of {@code processes} has exited, checking every 10 ms. */
  private static void awaitExit(List<ProcessHandle> processes) {
    long deadline = System.nanoTime() + WAIT.toNanos();
    while (processes.stream().anyMatch(PrimaryAndStandby::running)) {
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("still running after SIGKILL: " + processes);
      }
      sleep(10);
    }
  }

  /**
   * Whether the process runs: alive, and not a zombie. An orphaned postmaster's parent is the
   * init process, which may take a second to reap it; dead is dead meanwhile.
   */
  private static boolean running(ProcessHandle process) {
    if (!process.isAlive()) {
      return false;
    }
    try {
      String stat = Files.readString(Path.of("/proc", Long.toString(process.pid()), "stat"));
      return !stat.substring(stat.lastIndexOf(')') + 1).trim().startsWith("Z");
    } catch (IOException e) {
      return !Files.isDirectory(Path.of("/proc")); // gone, unless /proc is not there at all
    }
  }

  private static long postmasterPid(Path data) throws IOException {
    Path pidFile = data.resolve("postmaster.pid");
    if (!Files.exists(pidFile)) {
      throw new IOException("no postmaster.pid in " + data);
    }
    return Long.parseLong(Files.readAllLines(pidFile).get(0).trim());
  }

  private static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0)) {
      return socket.getLocalPort();
    }
  }

  private static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted", e);
    }
  }

  /**
   * Stops the standby and the primary (a fast shutdown), then SIGKILLs whatever of theirs still
   * runs, so that no postmaster outlives the test.
   */
  @Override
  public synchronized void close() {
    if (Thread.currentThread() != closeAtExit) {
      Runtime.getRuntime().removeShutdownHook(closeAtExit);
    }
    try {
      stop(standby);
      if (!primaryKilled) {
        stop(primary);
      }
    } finally {
      List<ProcessHandle> left = new ArrayList<>();
      for (ProcessHandle postmaster : postmasters) {
        if (running(postmaster)) {
          left.add(postmaster);
          postmaster.descendants().forEach(left::add);
        }
      }
      // pg_ctl stop returns once the pid file is gone, a moment before the process is.
      long grace = System.nanoTime() + Duration.ofSeconds(5).toNanos();
      while (left.stream().anyMatch(PrimaryAndStandby::running) && System.nanoTime() < grace) {
        sleep(10);
      }
      left.forEach(ProcessHandle::destroyForcibly);
      awaitExit(left);
    }
  }

  private static void stop(EmbeddedPostgres server) {
    if (server == null) {
      return;
    }
    try {
      server.close();
    } catch (IOException e) {
      throw new UncheckedIOException("stopping PostgreSQL failed", e);
    }
  }
}
