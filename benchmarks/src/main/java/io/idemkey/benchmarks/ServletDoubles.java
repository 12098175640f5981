package io.idemkey.benchmarks;

import jakarta.servlet.FilterChain;
import jakarta.servlet.ReadListener;
import jakarta.servlet.ServletInputStream;
import jakarta.servlet.ServletOutputStream;
import jakarta.servlet.WriteListener;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.lang.reflect.Proxy;
import java.util.Collections;
import java.util.List;

/**
 * Minimal in-process servlet request and response objects for benchmarking the filter without
 * a network: only what the filter calls answers; everything else returns a default.
 */
final class ServletDoubles {

  private ServletDoubles() {}

  static HttpServletRequest request(String method, String path, String key) {
    return (HttpServletRequest)
        Proxy.newProxyInstance(
            ServletDoubles.class.getClassLoader(),
            new Class<?>[] {HttpServletRequest.class},
            (proxy, m, args) -> {
              switch (m.getName()) {
                case "getMethod":
                  return method;
                case "getServletPath":
                case "getRequestURI":
                  return path;
                case "getContentType":
                  return "application/json";
                case "getContentLengthLong":
                  return 0L;
                case "getContentLength":
                  return 0;
                case "getHeaders":
                  return Collections.enumeration(
                      key != null && "Idempotency-Key".equalsIgnoreCase((String) args[0])
                          ? List.of(key)
                          : "Content-Type".equalsIgnoreCase((String) args[0])
                              ? List.of("application/json")
                              : List.of());
                case "getInputStream":
                  return emptyInput();
                default:
                  return defaultValue(m.getReturnType());
              }
            });
  }

  static HttpServletResponse response() {
    ServletOutputStream sink = discardingOutput();
    return (HttpServletResponse)
        Proxy.newProxyInstance(
            ServletDoubles.class.getClassLoader(),
            new Class<?>[] {HttpServletResponse.class},
            (proxy, m, args) -> {
              switch (m.getName()) {
                case "getOutputStream":
                  return sink;
                case "getHeaderNames":
                  return List.of();
                case "getStatus":
                  return 201;
                case "getCharacterEncoding":
                  return "UTF-8";
                default:
                  return defaultValue(m.getReturnType());
              }
            });
  }

  /** A handler that writes a small JSON body, like a payment response. */
  static FilterChain handler() {
    byte[] body = "{\"id\":1,\"amount\":1250,\"currency\":\"EUR\",\"status\":\"accepted\"}".getBytes();
    return (request, response) -> response.getOutputStream().write(body);
  }

  private static Object defaultValue(Class<?> type) {
    if (type == boolean.class) {
      return false;
    }
    if (type == int.class) {
      return 0;
    }
    if (type == long.class) {
      return 0L;
    }
    return null;
  }

  private static ServletInputStream emptyInput() {
    return new ServletInputStream() {
      @Override
      public int read() {
        return -1;
      }

      @Override
      public boolean isFinished() {
        return true;
      }

      @Override
      public boolean isReady() {
        return true;
      }

      @Override
      public void setReadListener(ReadListener listener) {}
    };
  }

  private static ServletOutputStream discardingOutput() {
    return new ServletOutputStream() {
      @Override
      public void write(int b) {}

      @Override
      public void write(byte[] bytes, int offset, int length) {}

      @Override
      public boolean isReady() {
        return true;
      }

      @Override
      public void setWriteListener(WriteListener listener) {}
    };
  }
}
