package io.idemkey.filter;

import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.FilterConfig;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import java.io.IOException;

/**
 * A filter in front of idemkey that reads a form parameter, as a CSRF filter does: the container
 * then consumes the form body before idemkey sees it.
 */
final class FormReadInFront implements Filter {

  private final Filter next;

  FormReadInFront(Filter next) {
    this.next = next;
  }

  @Override
  public void init(FilterConfig config) throws ServletException {
    next.init(config);
  }

  @Override
  public void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
      throws IOException, ServletException {
    request.getParameter("csrf");
    next.doFilter(request, response, chain);
  }

  @Override
  public void destroy() {
    next.destroy();
  }
}
