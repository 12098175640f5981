package io.idemkey.demo;

import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.util.concurrent.TimeoutException;
import org.eclipse.jetty.http.HttpException;
import org.eclipse.jetty.io.EofException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The demo's outermost filter: what the chain throws becomes a problem+json answer without
 * internals ({@link ProblemJson}), if nothing was sent yet: 408 for a request body that stopped
 * arriving (the connector's idle timeout), 400 for one that ended early or was malformed, 500 for
 * anything else. The exception is logged here, never sent. Thread-safe: it holds no state.
 */
final class ProblemFilter implements Filter {

  private static final Logger LOG = LoggerFactory.getLogger(ProblemFilter.class);

  @Override
  public void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
      throws IOException, ServletException {
    try {
      chain.doFilter(request, response);
    } catch (IOException | ServletException | RuntimeException e) {
      HttpServletResponse http = (HttpServletResponse) response;
      int status = statusOf(e);
      if (status >= 500) {
        LOG.error("{} {} failed", method(request), path(request), e);
      } else {
        LOG.info("{} {}: {} ({})", method(request), path(request), status, e.toString());
      }
      if (http.isCommitted()) {
        throw e; // part of the answer is out: Jetty can only cut the connection now
      }
      http.reset();
      http.setStatus(status);
      http.setContentType(ProblemJson.CONTENT_TYPE);
      byte[] body = ProblemJson.of(status, ProblemJson.detailFor(status));
      http.setContentLength(body.length);
      try {
        http.getOutputStream().write(body);
      } catch (IOException gone) {
        LOG.debug("the client of {} {} is gone", method(request), path(request), gone);
      }
    }
  }

  /** The status that explains {@code failure} to the client, from its cause chain. */
  static int statusOf(Throwable failure) {
    for (Throwable cause = failure; cause != null; cause = cause.getCause()) {
      if (cause instanceof TimeoutException) {
        return 408;
      }
      if (cause instanceof HttpException http && http.getCode() >= 400 && http.getCode() < 500) {
        return http.getCode();
      }
      if (cause instanceof EofException) {
        return 400;
      }
      if (cause.getCause() == cause) {
        break;
      }
    }
    return 500;
  }

  private static String method(ServletRequest request) {
    return request instanceof HttpServletRequest http ? http.getMethod() : "?";
  }

  private static String path(ServletRequest request) {
    return request instanceof HttpServletRequest http ? http.getRequestURI() : "?";
  }
}
