package io.idemkey.demo;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.filter.IdempotencyConfig;
import io.idemkey.filter.IdempotencyFilter;
import io.idemkey.store.RequestTransactions;
import jakarta.servlet.DispatcherType;
import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.EnumSet;
import java.util.List;
import org.eclipse.jetty.ee10.servlet.FilterHolder;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;

/**
 * The demo's card processor (SPEC §12): another HTTP service, served by every demo node on its own
 * path, {@code POST /processor/charges}, outside the payments filter. Like a real processor it
 * deduplicates by its own {@code Idempotency-Key} (required) with an idemkey filter of its own, on
 * its own keys table ({@code processor_keys}), in transactional mode: a charge row and the
 * processor's stored answer commit together. A duplicate that arrives while the first is running
 * waits for its answer.
 *
 * <p>It has its own connection pool on the demo's database, as large as the demo's. Its tables:
 * {@code charges}, one row per charge; {@code processor_calls}, one row per request
 * that reached it, deduplicated or not (counted before its filter, in its own commit). For tests,
 * {@code delayMs=N} sleeps N ms after the charge is written and before the answer.
 */
final class CardProcessor {

  /** The path every node serves the processor on. */
  static final String PATH = "/processor";
  /** The {@code application_name} of the processor's sessions in {@code pg_stat_activity}. */
  static final String APPLICATION_NAME = "idemkey-demo-processor";

  private CardProcessor() {}

  /**
   * Creates the processor's tables and serves it in {@code context}, on the demo's pool, with the
   * lease, store timeouts and pool of {@code payments} (the payments filter's configuration).
   */
  static void install(ServletContextHandler context, HikariDataSource paymentsPool,
      IdempotencyConfig payments) throws SQLException {
    HikariDataSource dataSource = pool(paymentsPool);
    try {
      serve(context, dataSource, payments);
    } catch (SQLException | RuntimeException e) {
      dataSource.close();
      throw e;
    }
  }

  /**
   * The processor's own pool on the same database: a separate service has its own connections,
   * and its load (it holds each charge's transaction while its test delay runs) is its own.
   */
  private static HikariDataSource pool(HikariDataSource paymentsPool) {
    HikariConfig pool = new HikariConfig();
    pool.setPoolName("processor");
    pool.setJdbcUrl(paymentsPool.getJdbcUrl());
    pool.setUsername(paymentsPool.getUsername());
    pool.setPassword(paymentsPool.getPassword());
    pool.setMaximumPoolSize(paymentsPool.getMaximumPoolSize());
    pool.setConnectionTimeout(paymentsPool.getConnectionTimeout());
    pool.setValidationTimeout(paymentsPool.getValidationTimeout());
    pool.setInitializationFailTimeout(-1);
    pool.setDataSourceProperties(paymentsPool.getDataSourceProperties()); // the same timeouts
    pool.addDataSourceProperty("ApplicationName", APPLICATION_NAME);
    return new HikariDataSource(pool);
  }

  private static void serve(ServletContextHandler context, HikariDataSource dataSource,
      IdempotencyConfig payments) throws SQLException {
    // Every database call of the processor is bounded as the demo's (SPEC §11).
    Duration bound = payments.jdbcConnectTimeout();
    DatabaseCalls database = new DatabaseCalls(dataSource, bound);
    for (int attempt = 1; ; attempt++) {
      try {
        database.run(connection -> {
          try (Statement statement = connection.createStatement()) {
            statement.execute("CREATE TABLE IF NOT EXISTS charges (id bigserial PRIMARY KEY,"
                + " amount bigint NOT NULL, currency text NOT NULL,"
                + " created_at timestamptz NOT NULL DEFAULT now())");
            return statement.execute(
                "CREATE TABLE IF NOT EXISTS processor_calls (id bigserial PRIMARY KEY,"
                    + " at timestamptz NOT NULL DEFAULT now())");
          }
        });
        break;
      } catch (SQLException e) {
        // Two nodes starting at once race in CREATE TABLE IF NOT EXISTS (PostgreSQL answers the
        // loser with a unique violation in its catalog, or "type ... already exists"): the other
        // node made the table; look again.
        String state = e.getSQLState();
        boolean raced =
            "23505".equals(state) || "42P07".equals(state) || "42710".equals(state);
        if (!raced || attempt == 5) {
          throw e;
        }
        try {
          Thread.sleep(100);
        } catch (InterruptedException interrupted) {
          Thread.currentThread().interrupt();
          throw e;
        }
      }
    }
    IdempotencyConfig config =
        IdempotencyConfig.builder()
            .table("processor_keys")
            .includePaths(List.of(PATH + "/*"))
            .required(true)
            .transactional(true)
            .onInFlight(IdempotencyConfig.InFlight.WAIT)
            .lease(payments.lease())
            .jdbcConnectTimeout(payments.jdbcConnectTimeout())
            .build();
    IdempotencyFilter filter =
        IdempotencyFilter.builder().config(config).dataSource(dataSource).build();
    EnumSet<DispatcherType> requests = EnumSet.of(DispatcherType.REQUEST);
    context.addFilter(new FilterHolder(new CallCounter(dataSource, bound)), PATH + "/*",
        requests);
    context.addFilter(new FilterHolder(filter), PATH + "/*", requests);
    context.addServlet(
        new ServletHolder(
            new Charges(new DatabaseCalls(RequestTransactions.dataSource(dataSource), bound))),
        PATH + "/charges");
  }

  /**
   * Counts each request that reaches the processor, in its own commit. It owns the processor's
   * pool, closed when the server stops it.
   */
  private static final class CallCounter implements Filter {
    private final HikariDataSource dataSource;
    private final DatabaseCalls database;

    CallCounter(HikariDataSource dataSource, Duration bound) {
      this.dataSource = dataSource;
      this.database = new DatabaseCalls(dataSource, bound);
    }

    @Override
    public void destroy() {
      dataSource.close();
    }

    @Override
    public void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
        throws IOException, ServletException {
      if ("POST".equals(((HttpServletRequest) request).getMethod())) {
        try {
          database.run(connection -> {
            try (Statement insert = connection.createStatement()) {
              return insert.executeUpdate("INSERT INTO processor_calls DEFAULT VALUES");
            }
          });
        } catch (SQLException e) {
          PaymentsServlet.problem((HttpServletResponse) response, 503,
              "the processor's database is unavailable");
          return;
        }
      }
      chain.doFilter(request, response);
    }
  }

  /**
   * {@code POST /processor/charges} with the payment's JSON: 201 {@code
   * {"id","amount","currency"}}. Any other method is 405 problem+json with {@code Allow} ({@link
   * DemoServlet}): {@code TRACE} echoes nothing, {@code PATCH} is not a 501.
   */
  private static final class Charges extends DemoServlet {
    private final DatabaseCalls database;

    Charges(DatabaseCalls database) {
      super("POST");
      this.database = database;
    }

    @Override
    protected void doPost(HttpServletRequest request, HttpServletResponse response)
        throws IOException {
      // Checked before the charge: a 400 commits with the processor's transaction.
      long delayMs = PaymentsServlet.millis(request.getParameter("delayMs"));
      if (delayMs < 0) {
        PaymentsServlet.problem(response, 400, "delayMs must be a whole number of milliseconds");
        return;
      }
      String body = new String(request.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (!(PaymentRequest.parse(body) instanceof PaymentRequest.Valid valid)) {
        PaymentsServlet.problem(response, 400, "not a charge");
        return;
      }
      PaymentRequest charge = valid.request();
      long id;
      try {
        id = database.run(connection -> {
          try (PreparedStatement insert = connection.prepareStatement(
              "INSERT INTO charges (amount, currency) VALUES (?, ?) RETURNING id")) {
            insert.setLong(1, charge.amount());
            insert.setString(2, charge.currency());
            try (ResultSet row = insert.executeQuery()) {
              row.next();
              return row.getLong(1);
            }
          }
        });
      } catch (SQLException e) {
        PaymentsServlet.problem(response, 503, "the processor's database is unavailable");
        return;
      }
      if (delayMs > 0) {
        try {
          Thread.sleep(delayMs);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
      response.setStatus(201);
      PaymentsServlet.json(response, "{\"id\":" + id + ",\"amount\":" + charge.amount()
          + ",\"currency\":\"" + charge.currency() + "\"}");
    }
  }
}
