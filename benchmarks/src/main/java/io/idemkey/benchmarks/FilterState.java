package io.idemkey.benchmarks;

import io.idemkey.filter.IdempotencyConfig;
import io.idemkey.filter.IdempotencyFilter;
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
 * answered from the in-memory store).
 */
@State(Scope.Benchmark)
public class FilterState {

  @Param({"bare", "uncovered", "replay"})
  public String path;

  IdempotencyFilter filter;
  FilterChain handler;
  HttpServletRequest request;
  HttpServletResponse response;

  @Setup(Level.Trial)
  public void setUp() throws Exception {
    IdempotencyConfig config =
        IdempotencyConfig.builder().store(IdempotencyConfig.StoreType.MEMORY).build();
    filter =
        IdempotencyFilter.builder()
            .config(config)
            .store(StoreBuilder.memory().build())
            .listener(event -> {})
            .build();
    handler = ServletDoubles.handler();
    response = ServletDoubles.response();
    request =
        path.equals("replay")
            ? ServletDoubles.request("POST", "/payments", "bench-key")
            : ServletDoubles.request("GET", "/payments/1", null);
    if (path.equals("replay")) {
      filter.doFilter(request, response, handler);
    }
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    filter.destroy();
  }
}
