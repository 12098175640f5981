package io.idemkey.filter;

import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.FilterConfig;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.util.UUID;

/**
 * A filter in front of idemkey that sets headers before the chain, as a CORS filter and a
 * request-id filter do: they set them again on every request, replays included.
 */
final class HeadersInFront implements Filter {

  private final Filter next;

  HeadersInFront(Filter next) {
    this.next = next;
  }

  @Override
  public void init(FilterConfig config) throws ServletException {
    next.init(config);
  }

  @Override
  public void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
      throws IOException, ServletException {
    HttpServletResponse http = (HttpServletResponse) response;
    String origin = ((HttpServletRequest) request).getHeader("Origin");
    if (origin != null) {
      http.setHeader("Access-Control-Allow-Origin", origin);
    }
    http.setHeader("X-Request-Id", UUID.randomUUID().toString());
    next.doFilter(request, response, chain);
  }

  @Override
  public void destroy() {
    next.destroy();
  }
}
