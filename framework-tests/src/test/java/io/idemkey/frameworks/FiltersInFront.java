package io.idemkey.frameworks;

import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.FilterConfig;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import java.io.IOException;

/** A filter of the application's in front of the idemkey filter, as one filter for a container. */
final class FiltersInFront implements Filter {

  private final Filter front;
  private final Filter idempotency;

  FiltersInFront(Filter front, Filter idempotency) {
    this.front = front;
    this.idempotency = idempotency;
  }

  @Override
  public void init(FilterConfig config) throws ServletException {
    front.init(config);
    idempotency.init(config);
  }

  @Override
  public void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
      throws IOException, ServletException {
    front.doFilter(request, response, (req, res) -> idempotency.doFilter(req, res, chain));
  }

  @Override
  public void destroy() {
    idempotency.destroy();
    front.destroy();
  }
}
