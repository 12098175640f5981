package io.idemkey.demo;

import java.nio.file.Path;
import java.time.Duration;
import java.time.format.DateTimeParseException;
import java.util.List;
import java.util.Locale;

/**
 * The demo's own settings, apart from the filter's {@code idempotency.*} properties: each from an
 * environment variable, else a system property, else its default ({@link #setting}; {@link
 * #USAGE} and docs/demo.md list every one, which {@code DemoSettingsTest} checks). Immutable.
 *
 * @param port {@code PORT} / {@code port}: the HTTP port (0: any free port); default 8080
 * @param jdbcUrl {@code IDEMPOTENCY_JDBC_URL} / {@code idempotency.jdbc.url}; null: an embedded
 *     PostgreSQL is started
 * @param jdbcUser {@code IDEMPOTENCY_JDBC_USERNAME} / {@code idempotency.jdbc.username}
 * @param jdbcPassword {@code IDEMPOTENCY_JDBC_PASSWORD} / {@code idempotency.jdbc.password}
 * @param dataDirectory {@code IDEMKEY_DEMO_DATA} / {@code demo.data}: where the embedded
 *     PostgreSQL keeps its files (in {@code postgres/} below it); default {@code ./demo-data}
 * @param databasePort {@code DEMO_DB_PORT} / {@code demo.db-port}: the embedded PostgreSQL's
 *     port, the same on every start so that other nodes keep their URL (0: any free port);
 *     default {@value #DEFAULT_DATABASE_PORT}
 * @param clean the {@code --clean} argument: delete the embedded database's files before start
 * @param shutdownGrace {@code DEMO_SHUTDOWN_GRACE} / {@code demo.shutdown-grace}: how long a stop
 *     waits for requests in flight; null: 35 s, or the lease if that is longer
 * @param idleTimeout {@code DEMO_IDLE_TIMEOUT} / {@code demo.idle-timeout}: how long a connection
 *     may send or take nothing (a stalled upload then gets 408); default 30 s
 */
record DemoSettings(
    int port,
    String jdbcUrl,
    String jdbcUser,
    String jdbcPassword,
    Path dataDirectory,
    int databasePort,
    boolean clean,
    Duration shutdownGrace,
    Duration idleTimeout) {

  static final Duration DEFAULT_SHUTDOWN_GRACE = Duration.ofSeconds(35);
  static final Duration DEFAULT_IDLE_TIMEOUT = Duration.ofSeconds(30);
  static final int DEFAULT_DATABASE_PORT = 15432;

  /** What {@code --help} prints. */
  static final String USAGE = """
      Usage: java -jar demo-app/target/demo-app.jar [--clean] [--help]

      The idemkey demo: a payments API with the Idempotency-Key filter in front (docs/demo.md).
      Without IDEMPOTENCY_JDBC_URL it starts an embedded PostgreSQL, which stops with this
      process.

        --clean   delete the embedded database's files first, then start afresh
        --help    print this and exit

      Settings: an environment variable, or the system property after it (-Dname=value).
        PORT                        port          HTTP port; default 8080 (0: any free port)
        IDEMPOTENCY_JDBC_URL        idempotency.jdbc.url
                                    a PostgreSQL of your own; default: the embedded one
        IDEMPOTENCY_JDBC_USERNAME   idempotency.jdbc.username
        IDEMPOTENCY_JDBC_PASSWORD   idempotency.jdbc.password
        IDEMKEY_DEMO_DATA           demo.data     the embedded database's directory (in
                                                  postgres/ below it); default ./demo-data
        DEMO_DB_PORT                demo.db-port  the embedded database's port; default 15432
                                                  (0: any free port)
        DEMO_SHUTDOWN_GRACE         demo.shutdown-grace
                                    how long SIGTERM lets requests finish; default 35s, or
                                    the lease if longer
        DEMO_IDLE_TIMEOUT           demo.idle-timeout
                                    a connection that sends nothing this long is closed (a
                                    stalled upload gets 408); default 30s
        PROCESSOR_URL               demo.processor-url
                                    the card processor to charge, e.g. another node's
                                    http://host:port/processor; default: this node's own
      The filter's own settings: -Didempotency.<property>=value or IDEMPOTENCY_<PROPERTY>
      (docs/configuration.md), e.g. -Didempotency.lease=10s.
      """;

  /** The settings of a node on {@code jdbcUrl} (or embedded, when null), all else by default. */
  static DemoSettings of(int port, String jdbcUrl, String jdbcUser, String jdbcPassword) {
    return new DemoSettings(port, jdbcUrl, jdbcUser, jdbcPassword, Path.of("demo-data"),
        DEFAULT_DATABASE_PORT, false, null, DEFAULT_IDLE_TIMEOUT);
  }

  /**
   * Reads the settings from the environment, system properties and {@code args}.
   *
   * @throws IllegalArgumentException naming the setting, when a value is bad or an argument
   *     unknown
   */
  static DemoSettings load(List<String> args) {
    boolean clean = false;
    for (String arg : args) {
      if (arg.equals("--clean")) {
        clean = true;
      } else {
        throw new IllegalArgumentException(
            "unknown argument " + arg + " (the demo takes --clean and --help)");
      }
    }
    String grace = setting("DEMO_SHUTDOWN_GRACE", "demo.shutdown-grace", null);
    return new DemoSettings(
        port("PORT", setting("PORT", "port", "8080")),
        setting("IDEMPOTENCY_JDBC_URL", "idempotency.jdbc.url", null),
        setting("IDEMPOTENCY_JDBC_USERNAME", "idempotency.jdbc.username", null),
        setting("IDEMPOTENCY_JDBC_PASSWORD", "idempotency.jdbc.password", null),
        Path.of(setting("IDEMKEY_DEMO_DATA", "demo.data", "demo-data")),
        port("DEMO_DB_PORT",
            setting("DEMO_DB_PORT", "demo.db-port", Integer.toString(DEFAULT_DATABASE_PORT))),
        clean,
        grace == null ? null : duration("demo.shutdown-grace", grace),
        duration("demo.idle-timeout", setting("DEMO_IDLE_TIMEOUT", "demo.idle-timeout", "30s")));
  }

  /** Whether {@code args} ask for the usage ({@code --help} or {@code -h}). */
  static boolean helpAsked(List<String> args) {
    return args.contains("--help") || args.contains("-h");
  }

  /** This with another idle timeout. */
  DemoSettings withIdleTimeout(Duration timeout) {
    return new DemoSettings(port, jdbcUrl, jdbcUser, jdbcPassword, dataDirectory, databasePort,
        clean, shutdownGrace, timeout);
  }

  private static int port(String name, String value) {
    try {
      int port = Integer.parseInt(value);
      if (port >= 0 && port <= 65535) {
        return port;
      }
    } catch (NumberFormatException e) {
      // below
    }
    throw new IllegalArgumentException(name + " must be a port number (0 to 65535), not " + value);
  }

  /** The grace of a stop: as set, or 35 s, or {@code lease} if that is longer. */
  Duration shutdownGrace(Duration lease) {
    if (shutdownGrace != null) {
      return shutdownGrace;
    }
    return lease.compareTo(DEFAULT_SHUTDOWN_GRACE) > 0 ? lease : DEFAULT_SHUTDOWN_GRACE;
  }

  /** The embedded PostgreSQL's data directory. */
  Path postgresDirectory() {
    return dataDirectory.resolve("postgres").toAbsolutePath().normalize();
  }

  static String setting(String environment, String property, String fallback) {
    String value = System.getenv(environment);
    if (value == null || value.isBlank()) {
      value = System.getProperty(property);
    }
    return value == null || value.isBlank() ? fallback : value.trim();
  }

  /** {@code 500ms}, {@code 35s}, {@code 2m} or ISO-8601 ({@code PT35S}); not negative. */
  static Duration duration(String name, String value) {
    String text = value.trim().toLowerCase(Locale.ROOT);
    Duration parsed;
    try {
      if (text.startsWith("pt") || text.startsWith("p")) {
        parsed = Duration.parse(text.toUpperCase(Locale.ROOT));
      } else if (text.endsWith("ms")) {
        parsed = Duration.ofMillis(Long.parseLong(text.substring(0, text.length() - 2)));
      } else if (text.endsWith("s")) {
        parsed = Duration.ofSeconds(Long.parseLong(text.substring(0, text.length() - 1)));
      } else if (text.endsWith("m")) {
        parsed = Duration.ofMinutes(Long.parseLong(text.substring(0, text.length() - 1)));
      } else {
        throw new IllegalArgumentException(
            name + " must be a duration such as 500ms, 35s or PT35S, not " + value);
      }
    } catch (NumberFormatException | DateTimeParseException e) {
      throw new IllegalArgumentException(
          name + " must be a duration such as 500ms, 35s or PT35S, not " + value);
    }
    if (parsed.isNegative()) {
      throw new IllegalArgumentException(name + " must not be negative, not " + value);
    }
    return parsed;
  }
}
