package io.idemkey.demo;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.filter.IdempotencyConfig;
import io.idemkey.filter.IdempotencyFilter;
import io.idemkey.store.RequestTransactions;
import jakarta.servlet.DispatcherType;
import jakarta.servlet.Filter;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletRequestWrapper;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.security.Principal;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.eclipse.jetty.ee10.servlet.FilterHolder;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
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

  public static void main(String[] args) throws Exception {
    DemoApp app = start(DemoSettings.load(List.of(args)));
    Runtime.getRuntime().addShutdownHook(new Thread(app::close, "demo-shutdown"));
    System.out.println("idemkey demo listening on http://localhost:" + app.port());
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
      embedded = EmbeddedDatabase.start(settings.postgresDirectory(), settings.clean());
      jdbcUrl = embedded.jdbcUrl();
      user = "postgres";
      password = "postgres";
      System.out.println("embedded PostgreSQL started: " + jdbcUrl
          + " (user postgres, password postgres)");
      System.out.println("embedded PostgreSQL data directory: " + embedded.directory()
          + " (kept across restarts; delete it, or start with --clean, to start afresh)");
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
    // The demo's one pool, for the filter and the handlers: jdbc.pool-size connections. In
    // transactional mode each running POST /payments holds one until it commits, besides the
    // claims and lease renewals.
    HikariConfig pool = new HikariConfig();
    pool.setPoolName("demo");
    pool.setJdbcUrl(jdbcUrl);
    pool.setUsername(user);
    pool.setPassword(password);
    pool.setMaximumPoolSize(config.jdbcPoolSize());
    pool.setConnectionTimeout(config.jdbcConnectTimeout().toMillis());
    pool.setInitializationFailTimeout(-1);
    pool.addDataSourceProperty("ApplicationName", APPLICATION_NAME);
    // A database that hangs fails the handler's statements too, not only the filter's.
    pool.addDataSourceProperty("socketTimeout", "10");
    HikariDataSource dataSource = new HikariDataSource(pool);
    IdempotencyFilter filter = null;
    try {
      createPaymentsTable(dataSource);
      filter = IdempotencyFilter.builder().config(config).dataSource(dataSource).build();
      Server server = server(settings, config, dataSource, filter);
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
      IdempotencyFilter filter) throws SQLException {
    AtomicLong executions = new AtomicLong();
    ProcessorClient processor = new ProcessorClient();
    // Behind the filter, the handler's connection is the request's transaction.
    PaymentsServlet payments =
        new PaymentsServlet(RequestTransactions.dataSource(dataSource), executions, processor,
            false);
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
        new ServletHolder(new PaymentsServlet(dataSource, executions, processor, true)),
        "/bare/payments");
    CardProcessor.install(context, dataSource, config);
    context.addServlet(new ServletHolder(new BareStatic()), "/bare/static");
    context.addServlet(new ServletHolder(new Stats(dataSource, executions)), "/stats");
    context.addServlet(new ServletHolder(new Health()), "/health");
    context.setErrorHandler(new ProblemErrorHandler());

    Server server = new Server();
    server.setErrorHandler(new ProblemErrorHandler());
    ServerConnector connector = new ServerConnector(server);
    connector.setPort(settings.port());
    connector.setIdleTimeout(settings.idleTimeout().toMillis());
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
  private static void createPaymentsTable(HikariDataSource dataSource) throws SQLException {
    long deadline = System.nanoTime() + STARTUP_DATABASE_WAIT.toNanos();
    while (true) {
      try {
        tryCreatePaymentsTable(dataSource);
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

  private static void tryCreatePaymentsTable(HikariDataSource dataSource) throws SQLException {
    try (Connection connection = dataSource.getConnection();
        Statement statement = connection.createStatement()) {
      statement.execute(
          "CREATE TABLE IF NOT EXISTS payments (id bigserial PRIMARY KEY, amount bigint NOT NULL,"
              + " currency text NOT NULL, status text NOT NULL,"
              + " created_at timestamptz NOT NULL DEFAULT now())");
    }
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
    try {
      server.stop();
    } catch (Exception e) {
      System.err.println("stopping the server failed: " + e);
    }
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

  private static final class BareStatic extends HttpServlet {
    private static final String BODY =
        PaymentsServlet.toJson(1000000, 1250, "EUR", "accepted");

    @Override
    protected void doPost(HttpServletRequest request, HttpServletResponse response)
        throws IOException {
      response.setStatus(201);
      PaymentsServlet.json(response, BODY);
    }
  }

  private static final class Stats extends HttpServlet {
    private final HikariDataSource dataSource;
    private final AtomicLong executions;

    Stats(HikariDataSource dataSource, AtomicLong executions) {
      this.dataSource = dataSource;
      this.executions = executions;
    }

    @Override
    protected void doGet(HttpServletRequest request, HttpServletResponse response)
        throws IOException {
      try (Connection connection = dataSource.getConnection();
          Statement statement = connection.createStatement();
          ResultSet count = statement.executeQuery("SELECT (SELECT count(*) FROM payments),"
              + " (SELECT count(*) FROM charges), (SELECT count(*) FROM processor_calls)")) {
        count.next();
        PaymentsServlet.json(response,
            "{\"payments\":" + count.getLong(1) + ",\"executions\":" + executions.get()
                + ",\"charges\":" + count.getLong(2) + ",\"processorCalls\":" + count.getLong(3)
                + "}");
      } catch (SQLException e) {
        PaymentsServlet.problem(response, 503, "the payments database is unavailable");
      }
    }
  }

  private static final class Health extends HttpServlet {
    @Override
    protected void doGet(HttpServletRequest request, HttpServletResponse response)
        throws IOException {
      PaymentsServlet.json(response, "{\"status\":\"ok\"}");
    }
  }
}
