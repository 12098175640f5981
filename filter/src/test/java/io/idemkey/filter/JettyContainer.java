package io.idemkey.filter;

import jakarta.servlet.DispatcherType;
import jakarta.servlet.Filter;
import jakarta.servlet.MultipartConfigElement;
import jakarta.servlet.Servlet;
import java.net.URI;
import java.util.EnumSet;
import java.util.Map;
import org.eclipse.jetty.ee10.servlet.FilterHolder;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

/** Embedded Jetty 12 (ee10). */
public final class JettyContainer implements ServletContainer {

  private Server server;
  private URI uri;

  @Override
  public void start(Filter filter, Servlet servlet, String mapping, Map<String, String> initParams)
      throws Exception {
    server = new Server();
    ServerConnector connector = new ServerConnector(server);
    connector.setHost("127.0.0.1");
    connector.setPort(0);
    server.addConnector(connector);
    ServletContextHandler context = new ServletContextHandler();
    context.setContextPath("/");
    FilterHolder filterHolder = new FilterHolder(filter);
    filterHolder.setName("idempotency");
    filterHolder.setAsyncSupported(true);
    filterHolder.setInitParameters(initParams);
    context.addFilter(filterHolder, "/*", EnumSet.of(DispatcherType.REQUEST, DispatcherType.ASYNC));
    ServletHolder servletHolder = new ServletHolder("handler", servlet);
    servletHolder.setAsyncSupported(true);
    servletHolder.setInitOrder(1);
    servletHolder.getRegistration().setMultipartConfig(
        new MultipartConfigElement(System.getProperty("java.io.tmpdir")));
    context.addServlet(servletHolder, mapping);
    server.setHandler(context);
    server.start();
    uri = URI.create("http://127.0.0.1:" + connector.getLocalPort());
  }

  @Override
  public URI uri() {
    return uri;
  }

  @Override
  public void close() throws Exception {
    server.stop();
  }

  @Override
  public String toString() {
    return "Jetty 12";
  }
}
