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

  /** A payment request's body. */
  static final byte[] REQUEST_BODY = "{\"amount\":1250,\"currency\":\"EUR\"}".getBytes();
  /** A 1 KiB JSON response body: a payment with a note that pads it. */
  static final byte[] RESPONSE_BODY = responseBody(1024);

  /** A request with a payment body, and an Idempotency-Key unless {@code key} is null. */
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
                  return (long) REQUEST_BODY.length;
                case "getContentLength":
                  return REQUEST_BODY.length;
                case "getHeaders":
                  return Collections.enumeration(
                      key != null && "Idempotency-Key".equalsIgnoreCase((String) args[0])
                          ? List.of(key)
                          : "Content-Type".equalsIgnoreCase((String) args[0])
                              ? List.of("application/json")
                              : List.of());
                case "getInputStream":
                  return input(REQUEST_BODY);
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

  /** A handler that writes {@link #RESPONSE_BODY}. */
  static FilterChain handler() {
    return (request, response) -> response.getOutputStream().write(RESPONSE_BODY);
  }

  private static byte[] responseBody(int size) {
    String payment =
        "{\"id\":1,\"amount\":1250,\"currency\":\"EUR\",\"status\":\"accepted\",\"note\":\"";
    return (payment + "x".repeat(size - payment.length() - 2) + "\"}").getBytes();
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

  private static ServletInputStream input(byte[] bytes) {
    return new ServletInputStream() {
      private int position;

      @Override
      public int read() {
        return position < bytes.length ? bytes[position++] & 0xff : -1;
      }

      @Override
      public int read(byte[] buffer, int offset, int length) {
        if (position == bytes.length) {
          return length == 0 ? 0 : -1;
        }
        int n = Math.min(length, bytes.length - position);
        System.arraycopy(bytes, position, buffer, offset, n);
        position += n;
        return n;
      }

      @Override
      public boolean isFinished() {
        return position == bytes.length;
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
