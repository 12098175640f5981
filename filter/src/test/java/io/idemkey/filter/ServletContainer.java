package io.idemkey.filter;

import jakarta.servlet.Filter;
import jakarta.servlet.Servlet;
import java.net.URI;
import java.util.Map;

/**
 * An embedded servlet container for the tests: the filter on {@code /*} for REQUEST and ASYNC
 * dispatches, in front of one servlet (with a multipart config), both async-supported. Also used
 * by the framework tests (this module's test-jar).
 */
public interface ServletContainer extends AutoCloseable {

  /** Starts the container on a free loopback port, the servlet on {@code /*}. */
  default void start(Filter filter, Servlet servlet) throws Exception {
    start(filter, servlet, "/*", Map.of());
  }

  /** Starts the container, the filter with these init-params. */
  default void start(Filter filter, Servlet servlet, Map<String, String> initParams)
      throws Exception {
    start(filter, servlet, "/*", initParams);
  }

  /** Starts the container, the servlet on {@code mapping}. */
  default void start(Filter filter, Servlet servlet, String mapping) throws Exception {
    start(filter, servlet, mapping, Map.of());
  }

  /**
   * Starts the container on a free loopback port: the servlet on {@code mapping} (loaded at
   * start-up), the filter with {@code initParams}.
   */
  void start(Filter filter, Servlet servlet, String mapping, Map<String, String> initParams)
      throws Exception;

  /** The base URI, e.g. {@code http://127.0.0.1:41234}. */
  URI uri();

  @Override
  void close() throws Exception;
}
