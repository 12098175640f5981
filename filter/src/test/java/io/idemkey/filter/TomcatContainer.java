package io.idemkey.filter;

import jakarta.servlet.Filter;
import jakarta.servlet.MultipartConfigElement;
import jakarta.servlet.Servlet;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.apache.catalina.Context;
import org.apache.catalina.Wrapper;
import org.apache.catalina.connector.Connector;
import org.apache.catalina.startup.Tomcat;
import org.apache.tomcat.util.descriptor.web.FilterDef;
import org.apache.tomcat.util.descriptor.web.FilterMap;

/** Embedded Tomcat 11. */
public final class TomcatContainer implements ServletContainer {

  private Tomcat tomcat;
  private URI uri;

  @Override
  public void start(Filter filter, Servlet servlet, String mapping, Map<String, String> initParams)
      throws Exception {
    Path base = Files.createTempDirectory("tomcat");
    tomcat = new Tomcat();
    tomcat.setBaseDir(base.toString());
    Connector connector = new Connector();
    connector.setPort(0);
    connector.setProperty("address", "127.0.0.1");
    tomcat.setConnector(connector);
    Context context = tomcat.addContext("", base.toString());
    FilterDef filterDef = new FilterDef();
    filterDef.setFilterName("idempotency");
    filterDef.setFilter(filter);
    filterDef.setAsyncSupported("true");
    initParams.forEach(filterDef::addInitParameter);
    context.addFilterDef(filterDef);
    FilterMap filterMap = new FilterMap();
    filterMap.setFilterName("idempotency");
    filterMap.addURLPattern("/*");
    filterMap.setDispatcher("REQUEST");
    filterMap.setDispatcher("ASYNC");
    context.addFilterMap(filterMap);
    Wrapper wrapper = Tomcat.addServlet(context, "handler", servlet);
    wrapper.setAsyncSupported(true);
    wrapper.setLoadOnStartup(1);
    wrapper.setMultipartConfigElement(
        new MultipartConfigElement(System.getProperty("java.io.tmpdir")));
    context.addServletMappingDecoded(mapping, "handler");
    tomcat.start();
    uri = URI.create("http://127.0.0.1:" + connector.getLocalPort());
  }

  @Override
  public URI uri() {
    return uri;
  }

  @Override
  public void close() throws Exception {
    tomcat.stop();
    tomcat.destroy();
  }

  @Override
  public String toString() {
    return "Tomcat 11";
  }
}
