package io.idemkey.demo;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.filter.IdempotencyConfig;
import io.idemkey.filter.InvalidConfigurationException;
import io.idemkey.filter.IdempotencyFilter;
import io.idemkey.migrations.TableName;
import io.idemkey.store.Replication;
import io.idemkey.store.RequestTransactions;
import jakarta.servlet.DispatcherType;
import jakarta.servlet.Filter;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletRequestWrapper;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.BindException;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.security.Principal;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.EnumSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import org.eclipse.jetty.ee10.servlet.FilterHolder;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.GracefulHandler;

/**
 * The demo payments API (SPEC §11): Jetty with the idemkey filter in front of {@code POST
 * /payments}, on the PostgreSQL in {@code IDEMPOTENCY_JDBC_URL}, or on an embedded one it starts
 * itself ({@link EmbeddedDatabase}). Its own settings are in {@link DemoSettings}.
 */
public final class DemoApp implements AutoCloseable {

  /** The {@code application_name} of the demo pool's sessions in {@code pg_stat_activity}. */
  static final String APPLICATION_NAME = "idemkey-demo";

  /** The longest start-up wait for the database to answer. */
  static final Duration STARTUP_DATABASE_WAIT = Duration.ofSeconds(30);

  private final Server server;
  private final HikariDataSource dataSource;
  private final IdempotencyFilter filter;
  private final EmbeddedDatabase embedded;

  private DemoApp(
      Server server, HikariDataSource dataSource, IdempotencyFilter filter,
      EmbeddedDatabase embedded) {
    this.server = server;
    this.dataSource = dataSource;
    this.filter = filter;
    this.embedded = embedded;
  }

  /**
   * Starts the demo as {@code args} and the environment say; {@code --help} prints the usage. A
   * setting it cannot use ends it with one line that says why, and exit status 1.
   */
  public static void main(String[] args) throws Exception {
    if (DemoSettings.helpAsked(List.of(args))) {
      System.out.print(DemoSettings.USAGE);
      return;
    }
    DemoApp app;
    DemoSettings settings = null;
    try {
      settings = DemoSettings.load(List.of(args));
      app = start(settings);
    } catch (DemoStartException | IllegalArgumentException | InvalidConfigurationException e) {
      System.err.println("idemkey demo: " + e.getMessage());
      System.exit(1);
      return;
    } catch (IOException e) {
      if (!(e instanceof BindException) && !(e.getCause() instanceof BindException)) {
        throw e;
      }
      System.err.println("idemkey demo: port " + settings.port() + " is in use (another demo?);"
          + " start this one with PORT=<another port>");
      System.exit(1);
      return;
    }
    Runtime.getRuntime().addShutdownHook(new Thread(app::close, "demo-shutdown"));
    int port = app.port();
    System.out.println("idemkey demo listening on http://localhost:" + port);
    // A key of the node's kind: with sequence keys a number that grows (nanoseconds since 1970).
    String newKey = app.filter.config().keys() == IdempotencyConfig.Keys.SEQUENCE
        ? "$(date +%s%N)" : "$(cat /proc/sys/kernel/random/uuid)";
    System.out.println("try:         curl -si -X POST localhost:" + port + "/payments"
        + " -H \"Idempotency-Key: " + newKey + "\""
        + " -H 'Content-Type: application/json' -d '{\"amount\": 1250, \"currency\": \"EUR\"}'");
    if (app.embedded != null) {
      System.out.println("second node: " + nodeCommand(port + 1, app.embedded.jdbcUrl())
          + "   (the embedded database stops with this node)");
    } else {
      System.out.println("second node: the same IDEMPOTENCY_JDBC_* settings with PORT="
          + (port + 1));
    }
  }

  /** The command that starts a demo node on {@code port} on the database at {@code jdbcUrl}. */
  static String nodeCommand(int port, String jdbcUrl) {
    return "PORT=" + port + " IDEMPOTENCY_JDBC_URL=" + jdbcUrl
        + " IDEMPOTENCY_JDBC_USERNAME=postgres IDEMPOTENCY_JDBC_PASSWORD=postgres " + launcher();
  }

  /** {@code java -jar <this jar>} (relative to the working directory when under it). */
  private static String launcher() {
    try {
      Path location =
          Path.of(DemoApp.class.getProtectionDomain().getCodeSource().getLocation().toURI());
      if (location.toString().endsWith(".jar")) {
        Path here = Path.of("").toAbsolutePath();
        return "java -jar " + (location.startsWith(here) ? here.relativize(location) : location);
      }
    } catch (URISyntaxException | RuntimeException e) {
      // below
    }
    return "java -cp <the demo's class path> " + DemoApp.class.getName();
  }

  /**
   * Starts the app on {@code port} (0: any free port) on the given database, or on an embedded
   * PostgreSQL in {@code ./demo-data} when {@code jdbcUrl} is null.
   */
  public static DemoApp start(int port, String jdbcUrl, String user, String password)
      throws Exception {
    return start(DemoSettings.of(port, jdbcUrl, user, password));
  }

  static DemoApp start(DemoSettings settings) throws Exception {
    // SPEC §11: the key is required on POST /payments and every path under it, and the payment
    // commits with its stored response (transactional mode); everything else as SPEC §10 resolves
    // it (system properties and environment variables override these init-params). Resolved
    // first: a bad value fails before a database is started, and the pool is sized from it.
    IdempotencyConfig config =
        IdempotencyConfig.load(
            Map.of(
                "idempotency.include-paths", "/payments,/payments/*",
                "idempotency.required", "true",
                "idempotency.transactional", "true"));

    String jdbcUrl = settings.jdbcUrl();
    String user = settings.jdbcUser();
    String password = settings.jdbcPassword();
    EmbeddedDatabase embedded = null;
    if (jdbcUrl == null) {
      embedded = EmbeddedDatabase.start(settings.postgresDirectory(), settings.databasePort(),
          settings.clean(), settings.port());
      jdbcUrl = embedded.jdbcUrl();
      user = "postgres";
      password = "postgres";
      System.out.println("embedded PostgreSQL: " + jdbcUrl + " (user postgres, password"
          + " postgres; port DEMO_DB_PORT=" + settings.databasePort() + ")");
      System.out.println("its data directory: " + embedded.directory()
          + " (kept across restarts; --clean starts afresh)");
    } else {
      System.out.println("database: " + jdbcUrl.replaceAll("(?i)(password=)[^&]*", "$1****"));
    }
    try {
      return start(settings, config, jdbcUrl, user, password, embedded);
    } catch (Exception | Error e) {
      if (embedded != null) {
        embedded.close();
      }
      throw e;
    }
  }

  private static DemoApp start(
      DemoSettings settings, IdempotencyConfig config, String jdbcUrl, String user,
      String password, EmbeddedDatabase embedded) throws Exception {
    // The demo's one pool, for the filter and the handlers: jdbc.pool-size connections. A POST
    // /payments holds one from its insert to its commit (none while the processor answers), and
    // as many run at once as the pool has connections; the store keeps up to 3 of its own beside
    // it for lease upkeep (docs/connections.md).
    HikariConfig pool = new HikariConfig();
    pool.setPoolName("demo");
    pool.setJdbcUrl(jdbcUrl);
    pool.setUsername(user);
    pool.setPassword(password);
    pool.setMaximumPoolSize(config.jdbcPoolSize());
    pool.setConnectionTimeout(config.jdbcConnectTimeout().toMillis());
    // A database that is down or hangs is found out within the connect timeout, as the filter's
    // own pool does (SPEC §8): checking a connection, opening one and logging in are bounded too.
    pool.setValidationTimeout(Math.min(config.jdbcConnectTimeout().toMillis(), 1000));
    String seconds =
        Long.toString(Math.max(1, (config.jdbcConnectTimeout().toMillis() + 999) / 1000));
    pool.addDataSourceProperty("connectTimeout", seconds);
    pool.addDataSourceProperty("loginTimeout", seconds);
    pool.setInitializationFailTimeout(-1);
    pool.addDataSourceProperty("ApplicationName", APPLICATION_NAME);
    // A backstop for statements nobody bounds: the demo's own calls are bounded by the connect
    // timeout (DatabaseCalls), the filter's by its store.
    pool.addDataSourceProperty("socketTimeout", "10");
    HikariDataSource dataSource = new HikariDataSource(pool);
    IdempotencyFilter filter = null;
    try {
      createPaymentsTable(new DatabaseCalls(dataSource, config.jdbcConnectTimeout()));
      filter = IdempotencyFilter.builder().config(config).dataSource(dataSource).build();
      Server server = server(settings, config, dataSource, filter,
          new Health(jdbcUrl, user, password, config.tableName(), config.jdbcConnectTimeout(),
              filter.store()::wakesWaiters));
      server.start();
      return new DemoApp(server, dataSource, filter, embedded);
    } catch (Exception | Error e) {
      if (filter != null) {
        filter.destroy();
      }
      dataSource.close();
      throw e;
    }
  }

  private static Server server(
      DemoSettings settings, IdempotencyConfig config, HikariDataSource dataSource,
      IdempotencyFilter filter, Health health) throws SQLException {
    AtomicLong executions = new AtomicLong();
    ProcessorClient processor = new ProcessorClient();
    // Every database call of the demo is bounded by the filter's connect timeout (SPEC §11).
    Duration bound = config.jdbcConnectTimeout();
    DatabaseCalls database = new DatabaseCalls(dataSource, bound);
    // Behind the filter, the handler's connection is the request's transaction.
    PaymentsServlet payments = new PaymentsServlet(
        new DatabaseCalls(RequestTransactions.dataSource(dataSource), bound), executions,
        processor, false);
    ServletContextHandler context = new ServletContextHandler();
    context.setContextPath("/");
    // Outermost: whatever the chain throws is answered as problem+json, never an error page.
    context.addFilter(new FilterHolder(new ProblemFilter()), "/*",
        EnumSet.of(DispatcherType.REQUEST, DispatcherType.ASYNC));
    context.addFilter(new FilterHolder(new BearerPrincipal()), "/*",
        EnumSet.of(DispatcherType.REQUEST));
    context.addFilter(new FilterHolder(filter), "/payments/*",
        EnumSet.of(DispatcherType.REQUEST, DispatcherType.ASYNC));
    context.addServlet(new ServletHolder(payments), "/payments/*");
    context.addServlet(
        new ServletHolder(new PaymentsServlet(database, executions, processor, true)),
        "/bare/payments");
    CardProcessor.install(context, dataSource, config);
    context.addServlet(new ServletHolder(new BareStatic()), "/bare/static");
    context.addServlet(new ServletHolder(new Stats(database, executions)), "/stats");
    context.addServlet(
        new ServletHolder(health),
        "/health");
    // Any other path, any method: 404 (Jetty's default servlet would echo a TRACE).
    context.addServlet(new ServletHolder(new NotFound()), "/");
    context.setErrorHandler(new ProblemErrorHandler());

    Server server = new Server();
    server.setErrorHandler(new ProblemErrorHandler());
    ServerConnector connector = new ServerConnector(server);
    connector.setPort(settings.port());
    connector.setIdleTimeout(settings.idleTimeout().toMillis());
    // While stopping, an open keep-alive connection stays open as long as it would otherwise (by
    // default Jetty closes it at once, and a client's next request on it is cut): a request on
    // it gets 503 problem+json.
    connector.setShutdownIdleTimeout(settings.idleTimeout().toMillis());
    server.addConnector(connector);
    // On stop, the connector stops accepting, requests in flight finish (new requests on open
    // connections get 503), for at most the grace; only then do the pool and database stop.
    server.setHandler(new GracefulHandler(context));
    server.setStopTimeout(settings.shutdownGrace(config.lease()).toMillis());
    return server;
  }

  /**
   * Creates the payments table, retrying for up to {@link #STARTUP_DATABASE_WAIT}: a short {@code
   * jdbc.connect-timeout} bounds each try, not the start-up, when the database is slow to answer
   * (still starting, or a loaded machine).
   */
  private static void createPaymentsTable(DatabaseCalls database) throws SQLException {
    long deadline = System.nanoTime() + STARTUP_DATABASE_WAIT.toNanos();
    while (true) {
      try {
        tryCreatePaymentsTable(database);
        return;
      } catch (SQLException e) {
        if (System.nanoTime() > deadline) {
          throw e;
        }
        System.out.println("waiting for the database: " + e.getMessage());
      }
      try {
        Thread.sleep(200);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new SQLException("interrupted while waiting for the database", e);
      }
    }
  }

  private static void tryCreatePaymentsTable(DatabaseCalls database) throws SQLException {
    database.run(connection -> {
      try (Statement statement = connection.createStatement()) {
        return statement.execute(
            "CREATE TABLE IF NOT EXISTS payments (id bigserial PRIMARY KEY, amount bigint NOT NULL,"
                + " currency text NOT NULL, status text NOT NULL,"
                + " created_at timestamptz NOT NULL DEFAULT now())");
      }
    });
  }

  public int port() {
    return ((ServerConnector) server.getConnectors()[0]).getLocalPort();
  }

  /**
   * Stops gracefully: new connections are refused, in-flight requests finish (and store or
   * release their keys) for up to the shutdown grace; then the filter, the pool and the embedded
   * database stop.
   */
  @Override
  public void close() {
    Thread idleCloser = new Thread(this::closeIdleConnectionsOnceDrained, "demo-idle-closer");
    idleCloser.setDaemon(true);
    idleCloser.start();
    try {
      server.stop();
    } catch (Exception e) {
      System.err.println("stopping the server failed: " + e);
    }
    idleCloser.interrupt();
    filter.destroy();
    dataSource.close();
    if (embedded != null) {
      try {
        embedded.close();
      } catch (IOException e) {
        System.err.println("stopping embedded PostgreSQL failed: " + e);
      }
    }
  }

  /**
   * While the server stops, open connections are kept so that a request on one gets 503 rather
   * than a cut connection; once no request is in flight they are closed, so that an idle
   * keep-alive client does not hold the stop for the whole grace.
   */
  private void closeIdleConnectionsOnceDrained() {
    GracefulHandler graceful = (GracefulHandler) server.getHandler();
    try {
      while (graceful.getCurrentRequestCount() > 0) {
        Thread.sleep(100);
      }
    } catch (InterruptedException e) {
      return; // the server stopped on its own
    }
    for (Connector connector : server.getConnectors()) {
      for (EndPoint endPoint : connector.getConnectedEndPoints()) {
        endPoint.close();
      }
    }
  }

  /** {@code Authorization: Bearer NAME} makes NAME the principal (demo only). */
  private static final class BearerPrincipal implements Filter {
    @Override
    public void doFilter(
        jakarta.servlet.ServletRequest request,
        jakarta.servlet.ServletResponse response,
        jakarta.servlet.FilterChain chain)
        throws IOException, jakarta.servlet.ServletException {
      HttpServletRequest http = (HttpServletRequest) request;
      String authorization = http.getHeader("Authorization");
      if (authorization != null && authorization.startsWith("Bearer ")
          && authorization.length() > 7) {
        String name = authorization.substring(7).trim();
        Principal principal = () -> name;
        request = new HttpServletRequestWrapper(http) {
          @Override
          public Principal getUserPrincipal() {
            return principal;
          }
        };
      }
      chain.doFilter(request, response);
    }
  }

  /** Every path no other servlet serves: 404 problem+json, whatever the method. */
  private static final class NotFound extends jakarta.servlet.http.HttpServlet {
    @Override
    protected void service(HttpServletRequest request, HttpServletResponse response)
        throws IOException {
      PaymentsServlet.problem(response, 404, ProblemJson.detailFor(404));
    }
  }

  private static final class BareStatic extends DemoServlet {
    private static final String BODY =
        PaymentsServlet.toJson(1000000, 1250, "EUR", "accepted");

    BareStatic() {
      super("POST");
    }

    @Override
    protected void doPost(HttpServletRequest request, HttpServletResponse response)
        throws IOException {
      response.setStatus(201);
      PaymentsServlet.json(response, BODY);
    }
  }

  /**
   * {@code GET /stats}: the payments in the database (every node's) and the handler runs of this
   * process since it started; the answer says which is which.
   */
  private static final class Stats extends DemoServlet {
    private final DatabaseCalls database;
    private final AtomicLong executions;

    Stats(DatabaseCalls database, AtomicLong executions) {
      super("GET");
      this.database = database;
      this.executions = executions;
    }

    @Override
    protected void doGet(HttpServletRequest request, HttpServletResponse response)
        throws IOException {
      long[] counts;
      try {
        counts = database.run(connection -> {
          try (Statement statement = connection.createStatement();
              ResultSet count = statement.executeQuery("SELECT (SELECT count(*) FROM payments),"
                  + " (SELECT count(*) FROM charges), (SELECT count(*) FROM processor_calls)")) {
            count.next();
            return new long[] {count.getLong(1), count.getLong(2), count.getLong(3)};
          }
        });
      } catch (SQLException e) {
        PaymentsServlet.problem(response, 503, "the payments database is unavailable");
        return;
      }
      PaymentsServlet.json(response,
          "{\"payments\":" + counts[0] + ",\"executions\":" + executions.get()
              + ",\"charges\":" + counts[1] + ",\"processorCalls\":" + counts[2]
              + ",\"counted\":{\"payments\":\"rows in the database, every node's\","
              + "\"executions\":\"handler runs in this process since it started\","
              + "\"charges\":\"rows in the database, every node's\","
              + "\"processorCalls\":\"rows in the database, every node's\"}}");
    }
  }

  /**
   * {@code GET /health}: 200 when the keys' database answers and the keys table is there, else
   * 503 problem+json saying why. One query on a connection of its own (a pool busy with payments
   * is not a database that is down), kept open from one check to the next (opening one costs the
   * database a process; under load that alone can take longer than the timeout) and opened
   * again after a failure; connecting and the query are each bounded by {@code
   * jdbc.connect-timeout} (at least a second). The answer is kept for {@link #CHECK_EVERY}, so
   * probes cost the database at most one statement in that time. Thread-safe: one check at a
   * time, under the servlet's lock, which guards every field but the final ones.
   */
  private static final class Health extends DemoServlet {
    static final Duration CHECK_EVERY = Duration.ofSeconds(1);

    private final String jdbcUrl;
    private final Properties properties = new Properties();
    private final TableName table;
    private final Duration timeout;
    private Connection connection;
    private String failure;
    /** How the keys' database is replicated, as last seen (SPEC §14). */
    private Replication.Mode replication = Replication.Mode.UNKNOWN;
    private long checkedAt;
    private boolean checked;

    /** Whether this node hears settled keys (false behind PgBouncer without a listen URL). */
    private final java.util.function.BooleanSupplier wakesWaiters;

    Health(String jdbcUrl, String user, String password, TableName table, Duration timeout,
        java.util.function.BooleanSupplier wakesWaiters) {
      super("GET");
      this.wakesWaiters = wakesWaiters;
      this.jdbcUrl = jdbcUrl;
      this.table = table;
      this.timeout = timeout;
      String seconds = Long.toString(Math.max(1, (timeout.toMillis() + 999) / 1000));
      if (user != null) {
        properties.setProperty("user", user);
      }
      if (password != null) {
        properties.setProperty("password", password);
      }
      properties.setProperty("connectTimeout", seconds);
      properties.setProperty("loginTimeout", seconds);
      properties.setProperty("socketTimeout", seconds);
      properties.setProperty("ApplicationName", APPLICATION_NAME + "-health");
    }

    @Override
    public synchronized void destroy() {
      closeConnection();
    }

    @Override
    protected void doGet(HttpServletRequest request, HttpServletResponse response)
        throws IOException {
      String why = failure();
      if (why == null) {
        PaymentsServlet.json(response, "{\"status\":\"ok\",\"keys\":\"" + table
            + "\",\"replication\":\"" + replication.name().toLowerCase(Locale.ROOT)
            + "\",\"waiters\":\"" + (wakesWaiters.getAsBoolean() ? "woken"
                : "not woken: the keys' connections go through a transaction pooler; set"
                    + " idempotency.jdbc.listen-url") + "\"}");
      } else {
        PaymentsServlet.problem(response, 503, "the keys' database is not usable: " + why);
      }
    }

    /** Null when the database is usable; else why not. */
    private synchronized String failure() {
      long now = System.nanoTime();
      if (!checked || now - checkedAt >= CHECK_EVERY.toNanos()) {
        failure = check();
        checkedAt = System.nanoTime();
        checked = true;
      }
      return failure;
    }

    private String check() {
      try {
        if (connection == null) {
          connection = DriverManager.getConnection(jdbcUrl, properties);
        }
        try (PreparedStatement exists = connection.prepareStatement("SELECT to_regclass(?)")) {
          exists.setString(1, table.qualifiedTable());
          try (ResultSet row = exists.executeQuery()) {
            if (!row.next() || row.getString(1) == null) {
              return "the keys table " + table + " does not exist";
            }
          }
        }
        replication = Replication.of(connection, timeout).mode();
        return replication == Replication.Mode.STANDBY
            ? "it is a standby (read-only): keys cannot be written" : null;
      } catch (SQLException e) {
        closeConnection();
        String reason = e.getMessage();
        Throwable cause = e.getCause();
        return cause == null || cause.getMessage() == null
            ? reason : reason + " (" + cause.getMessage() + ")";
      }
    }

    private void closeConnection() {
      if (connection != null) {
        try {
          connection.close();
        } catch (SQLException ignored) {
          // it was broken already
        }
        connection = null;
      }
    }
  }
}
