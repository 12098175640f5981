package io.idemkey.benchmarks;

import io.idemkey.filter.IdempotencyConfig;
import io.idemkey.filter.IdempotencyFilter;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.StoreBuilder;
import jakarta.servlet.FilterChain;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * One request path through the filter, chosen by {@code path}: {@code bare} (the handler alone),
 * {@code uncovered} (a GET through the filter), {@code replay} (a POST whose key is completed,
 * answered from the in-memory store), {@code cached-replay} (the same, answered from the Caffeine
 * cache in front of PostgreSQL: what a retry on the node that ran the request costs). The handler
 * writes a 1 KiB JSON body; the POST carries a payment's JSON body.
 */
@State(Scope.Benchmark)
public class FilterState {

  @Param({"bare", "uncovered", "replay", "cached-replay"})
  public String path;

  private IdempotencyStore store;
  private DurablePostgres postgres;

  IdempotencyFilter filter;
  FilterChain handler;
  HttpServletRequest request;
  HttpServletResponse response;

  @Setup(Level.Trial)
  public void setUp() throws Exception {
    IdempotencyConfig config =
        IdempotencyConfig.builder().store(IdempotencyConfig.StoreType.MEMORY).build();
    StoreBuilder builder = StoreBuilder.memory();
    if (path.equals("cached-replay")) {
      postgres = DurablePostgres.start(false);
      builder = StoreBuilder.postgres(postgres.jdbcUrl(), postgres.user(), postgres.password());
    }
    store = builder.build();
    filter =
        IdempotencyFilter.builder()
            .config(config)
            .store(store)
            .listener(event -> {})
            .build();
    handler = ServletDoubles.handler();
    response = ServletDoubles.response();
    boolean replay = path.endsWith("replay");
    request =
        replay
            ? ServletDoubles.request("POST", "/payments", "bench-key")
            : ServletDoubles.request("GET", "/payments/1", null);
    if (replay) {
      filter.doFilter(request, response, handler);
    }
  }

  @TearDown(Level.Trial)
  public void tearDown() throws Exception {
    filter.destroy();
    store.close();
    if (postgres != null) {
      postgres.close();
    }
  }
}
