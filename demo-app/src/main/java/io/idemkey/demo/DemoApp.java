package io.idemkey.demo;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.filter.IdempotencyConfig;
import io.idemkey.filter.IdempotencyFilter;
import io.idemkey.store.RequestTransactions;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
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
import java.util.EnumSet;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.eclipse.jetty.ee10.servlet.FilterHolder;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

/**
 * The demo payments API (SPEC §11): Jetty with the idemkey filter in front of {@code POST
 * /payments}, on the PostgreSQL in {@code IDEMPOTENCY_JDBC_URL}, or on an embedded one it starts
 * itself.
 */
public final class DemoApp implements AutoCloseable {

  private final Server server;
  private final HikariDataSource dataSource;
  private final IdempotencyFilter filter;
  private final EmbeddedPostgres embedded;

  private DemoApp(
      Server server, HikariDataSource dataSource, IdempotencyFilter filter,
      EmbeddedPostgres embedded) {
    this.server = server;
    this.dataSource = dataSource;
    this.filter = filter;
    this.embedded = embedded;
  }

  public static void main(String[] args) throws Exception {
    int port = Integer.parseInt(setting("PORT", "port", "8080"));
    DemoApp app = start(port, setting("IDEMPOTENCY_JDBC_URL", "idempotency.jdbc.url", null),
        setting("IDEMPOTENCY_JDBC_USERNAME", "idempotency.jdbc.username", null),
        setting("IDEMPOTENCY_JDBC_PASSWORD", "idempotency.jdbc.password", null));
    Runtime.getRuntime().addShutdownHook(new Thread(app::close, "demo-shutdown"));
    System.out.println("idemkey demo listening on http://localhost:" + app.port());
  }

  private static String setting(String environment, String property, String fallback) {
    String value = System.getenv(environment);
    if (value == null || value.isBlank()) {
      value = System.getProperty(property);
    }
    return value == null || value.isBlank() ? fallback : value;
  }

  /**
   * Starts the app on {@code port} (0: any free port) on the given database, or on an embedded
   * PostgreSQL when {@code jdbcUrl} is null.
   */
  public static DemoApp start(int port, String jdbcUrl, String user, String password)
      throws Exception {
    EmbeddedPostgres embedded = null;
    if (jdbcUrl == null) {
      embedded = EmbeddedPostgres.builder().start();
      jdbcUrl = embedded.getJdbcUrl("postgres", "postgres");
      user = "postgres";
      password = "postgres";
      System.out.println("embedded PostgreSQL started: " + jdbcUrl
          + " (user postgres, password postgres)");
    }
    HikariConfig pool = new HikariConfig();
    pool.setPoolName("demo");
    pool.setJdbcUrl(jdbcUrl);
    pool.setUsername(user);
    pool.setPassword(password);
    pool.setMaximumPoolSize(20);
    pool.setConnectionTimeout(2000);
    pool.setInitializationFailTimeout(-1);
    // A database that hangs fails the handler's statements too, not only the filter's.
    pool.addDataSourceProperty("socketTimeout", "10");
    HikariDataSource dataSource = new HikariDataSource(pool);
    createPaymentsTable(dataSource);

    // SPEC §11: the key is required on POST /payments and every path under it, and the payment
    // commits with its stored response (transactional mode); everything else as SPEC §10 resolves
    // it (system properties and environment variables override these init-params).
    IdempotencyConfig config =
        IdempotencyConfig.load(
            Map.of(
                "idempotency.include-paths", "/payments,/payments/*",
                "idempotency.required", "true",
                "idempotency.transactional", "true"));
    IdempotencyFilter filter = IdempotencyFilter.builder().config(config).dataSource(dataSource).build();

    AtomicLong executions = new AtomicLong();
    // Behind the filter, the handler's connection is the request's transaction.
    PaymentsServlet payments =
        new PaymentsServlet(RequestTransactions.dataSource(dataSource), executions);
    ServletContextHandler context = new ServletContextHandler();
    context.setContextPath("/");
    context.addFilter(new FilterHolder(new BearerPrincipal()), "/*",
        EnumSet.of(DispatcherType.REQUEST));
    context.addFilter(new FilterHolder(filter), "/payments/*",
        EnumSet.of(DispatcherType.REQUEST, DispatcherType.ASYNC));
    context.addServlet(new ServletHolder(payments), "/payments/*");
    context.addServlet(new ServletHolder(new PaymentsServlet(dataSource, executions)),
        "/bare/payments");
    context.addServlet(new ServletHolder(new BareStatic()), "/bare/static");
    context.addServlet(new ServletHolder(new Stats(dataSource, executions)), "/stats");
    context.addServlet(new ServletHolder(new Health()), "/health");

    Server server = new Server();
    ServerConnector connector = new ServerConnector(server);
    connector.setPort(port);
    server.addConnector(connector);
    server.setHandler(context);
    server.setStopTimeout(10_000);
    server.start();
    return new DemoApp(server, dataSource, filter, embedded);
  }

  private static void createPaymentsTable(HikariDataSource dataSource) throws SQLException {
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

  /** Stops gracefully: in-flight requests finish (and store or release their keys) first. */
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
          ResultSet count = statement.executeQuery("SELECT count(*) FROM payments")) {
        count.next();
        PaymentsServlet.json(response,
            "{\"payments\":" + count.getLong(1) + ",\"executions\":" + executions.get() + "}");
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
