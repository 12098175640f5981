package io.idemkey.filter;

import jakarta.servlet.AsyncContext;
import jakarta.servlet.ReadListener;
import jakarta.servlet.ServletInputStream;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletRequestWrapper;
import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UnsupportedEncodingException;
import java.net.URLDecoder;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Enumeration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * A request whose body the filter has already read: the handler gets the same bytes through
 * {@link #getInputStream()}, {@link #getReader()} and, for form posts, the parameter methods.
 *
 * <p>Not thread-safe, like the request it wraps.
 */
final class CachedBodyRequest extends HttpServletRequestWrapper {

  private final byte[] body;
  private final int length;
  private boolean bodyUsed;
  private Map<String, String[]> parameters;
  private ServletResponse capturedResponse;
  private CapturedAsyncContext.Completion asyncCompletion;
  private CapturedAsyncContext asyncContext;

  CachedBodyRequest(HttpServletRequest request, byte[] body, int length) {
    super(request);
    this.body = body;
    this.length = length;
  }

  /**
   * Makes {@link #startAsync()} hand the handler a context whose response is {@code capture} and
   * whose completion runs {@code completion}.
   */
  void captureAsync(ServletResponse capture, CapturedAsyncContext.Completion completion) {
    this.capturedResponse = capture;
    this.asyncCompletion = completion;
  }

  @Override
  public AsyncContext startAsync() {
    return startAsync(this, capturedResponse);
  }

  @Override
  public AsyncContext startAsync(ServletRequest request, ServletResponse response) {
    AsyncContext started = super.startAsync(request, response);
    if (asyncContext == null) {
      asyncContext = new CapturedAsyncContext(started, asyncCompletion);
    }
    return asyncContext;
  }

  @Override
  public AsyncContext getAsyncContext() {
    return asyncContext != null ? asyncContext : super.getAsyncContext();
  }

  @Override
  public ServletInputStream getInputStream() {
    useBody();
    ByteArrayInputStream in = new ByteArrayInputStream(body, 0, length);
    return new ServletInputStream() {
      @Override
      public int read() {
        return in.read();
      }

      @Override
      public int read(byte[] buffer, int offset, int count) {
        return in.read(buffer, offset, count);
      }

      @Override
      public boolean isFinished() {
        return in.available() == 0;
      }

      @Override
      public boolean isReady() {
        return true;
      }

      @Override
      public void setReadListener(ReadListener listener) {
        try {
          listener.onDataAvailable();
          listener.onAllDataRead();
        } catch (IOException e) {
          listener.onError(e);
        }
      }
    };
  }

  @Override
  public BufferedReader getReader() throws UnsupportedEncodingException {
    Charset charset = charset();
    useBody();
    return new BufferedReader(
        new InputStreamReader(new ByteArrayInputStream(body, 0, length), charset));
  }

  private void useBody() {
    bodyUsed = true;
  }

  @Override
  public int getContentLength() {
    return length;
  }

  @Override
  public long getContentLengthLong() {
    return length;
  }

  @Override
  public String getParameter(String name) {
    String[] values = parameters().get(name);
    return values == null ? null : values[0];
  }

  @Override
  public Map<String, String[]> getParameterMap() {
    return Collections.unmodifiableMap(parameters());
  }

  @Override
  public Enumeration<String> getParameterNames() {
    return Collections.enumeration(parameters().keySet());
  }

  @Override
  public String[] getParameterValues(String name) {
    String[] values = parameters().get(name);
    return values == null ? null : values.clone();
  }

  /** Query parameters from the container, then form fields from the cached body. */
  private Map<String, String[]> parameters() {
    if (parameters != null) {
      return parameters;
    }
    Map<String, List<String>> merged = new LinkedHashMap<>();
    String query = getQueryString();
    if (query != null) {
      addDecoded(merged, query, StandardCharsets.UTF_8);
    }
    String contentType = getContentType();
    if (!bodyUsed
        && contentType != null
        && contentType.toLowerCase(Locale.ROOT).startsWith("application/x-www-form-urlencoded")) {
      Charset charset;
      try {
        charset = charset();
      } catch (UnsupportedEncodingException e) {
        charset = StandardCharsets.UTF_8;
      }
      addDecoded(merged, new String(body, 0, length, StandardCharsets.ISO_8859_1), charset);
    }
    Map<String, String[]> result = new LinkedHashMap<>();
    merged.forEach((name, values) -> result.put(name, values.toArray(new String[0])));
    parameters = result;
    return parameters;
  }

  private static void addDecoded(Map<String, List<String>> into, String encoded, Charset charset) {
    for (String pair : encoded.split("&")) {
      if (pair.isEmpty()) {
        continue;
      }
      int equals = pair.indexOf('=');
      String name = equals < 0 ? pair : pair.substring(0, equals);
      String value = equals < 0 ? "" : pair.substring(equals + 1);
      try {
        into.computeIfAbsent(decode(name, charset), n -> new ArrayList<>())
            .add(decode(value, charset));
      } catch (IllegalArgumentException malformed) {
        // A malformed escape is skipped, as containers do.
      }
    }
  }

  /** Decodes a form field whose bytes were read as ISO-8859-1 into the body's charset. */
  private static String decode(String text, Charset charset) {
    String bytesAsLatin1 = URLDecoder.decode(text, StandardCharsets.ISO_8859_1);
    return new String(bytesAsLatin1.getBytes(StandardCharsets.ISO_8859_1), charset);
  }

  private Charset charset() throws UnsupportedEncodingException {
    String encoding = getCharacterEncoding();
    if (encoding == null) {
      return StandardCharsets.UTF_8;
    }
    try {
      return Charset.forName(encoding);
    } catch (IllegalArgumentException e) {
      throw new UnsupportedEncodingException(encoding);
    }
  }
}
