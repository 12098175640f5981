package io.idemkey.filter;

import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.FilterConfig;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletRequestWrapper;
import java.io.IOException;
import java.security.Principal;

/** Test authentication: {@code X-User: NAME} makes NAME the principal, then the filter runs. */
final class PrincipalFromHeader implements Filter {

  private final Filter next;

  PrincipalFromHeader(Filter next) {
    this.next = next;
  }

  @Override
  public void init(FilterConfig config) throws ServletException {
    next.init(config);
  }

  @Override
  public void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
      throws IOException, ServletException {
    HttpServletRequest http = (HttpServletRequest) request;
    String user = http.getHeader("X-User");
    HttpServletRequest withPrincipal =
        new HttpServletRequestWrapper(http) {
          @Override
          public Principal getUserPrincipal() {
            return user == null ? null : () -> user;
          }
        };
    next.doFilter(withPrincipal, response, chain);
  }

  @Override
  public void destroy() {
    next.destroy();
  }
}
