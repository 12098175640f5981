package io.idemkey.filter;

import jakarta.servlet.Filter;
import jakarta.servlet.http.HttpServlet;
import java.net.URI;

/** An embedded servlet container for the tests: one filter on /*, one servlet (with a multipart config) on /*. */
interface ServletContainer extends AutoCloseable {

  /** Starts the container on a free port. */
  default void start(Filter filter, HttpServlet servlet) throws Exception {
    start(filter, servlet, java.util.Map.of());
  }

  /** Starts the container on a free port, the filter with these init-params. */
  void start(Filter filter, HttpServlet servlet, java.util.Map<String, String> initParams)
      throws Exception;

  /** The base URI, e.g. {@code http://127.0.0.1:41234}. */
  URI uri();

  @Override
  void close() throws Exception;
}
