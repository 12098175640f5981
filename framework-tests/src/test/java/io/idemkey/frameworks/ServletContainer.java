package io.idemkey.frameworks;

import jakarta.servlet.Filter;
import jakarta.servlet.Servlet;
import java.net.URI;

/**
 * An embedded servlet container for the framework tests: the idemkey filter on {@code /*} for
 * REQUEST and ASYNC dispatches, in front of one framework servlet, both async-supported.
 */
interface ServletContainer extends AutoCloseable {

  /** Starts the container on a free loopback port with {@code servlet} mapped to {@code mapping}. */
  void start(Filter filter, Servlet servlet, String mapping) throws Exception;

  /** The base URI, e.g. {@code http://127.0.0.1:41234}. */
  URI uri();

  @Override
  void close() throws Exception;
}
