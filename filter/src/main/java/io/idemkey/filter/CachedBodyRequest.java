package io.idemkey.filter;

import jakarta.servlet.AsyncContext;
import jakarta.servlet.ReadListener;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletInputStream;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletRequestWrapper;
import jakarta.servlet.http.Part;
import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UnsupportedEncodingException;
import java.net.URLDecoder;
import java.net.URLEncoder;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.Enumeration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * A request whose body the filter has already read: the handler gets the same bytes through
 * {@link #getInputStream()}, {@link #getReader()} and, for form posts, the parameter methods.
 *
 * <p>When the container has parsed the body instead (a form read by a filter in front of
 * idemkey, or a multipart upload, which the container parses for {@code getParts()}), the
 * parameters and parts are the container's, and the fingerprint covers a canonical form of them
 * (SPEC §4).
 *
 * <p>Not thread-safe, like the request it wraps.
 */
final class CachedBodyRequest extends HttpServletRequestWrapper {

  private static final String FORM = "application/x-www-form-urlencoded";
  private static final String MULTIPART = "multipart/form-data";
  private static final byte[] NO_BYTES = new byte[0];

  private final byte[] body;
  private final int length;
  private final byte[] fingerprintBody;
  private final boolean parsedByContainer;
  private boolean bodyUsed;
  private Map<String, String[]> parameters;
  private ServletResponse capturedResponse;
  private CapturedAsyncContext.Completion asyncCompletion;
  private CapturedAsyncContext asyncContext;

  private CachedBodyRequest(
      HttpServletRequest request,
      byte[] body,
      int length,
      byte[] fingerprintBody,
      boolean parsedByContainer) {
    super(request);
    this.body = body;
    this.length = length;
    this.fingerprintBody = fingerprintBody;
    this.parsedByContainer = parsedByContainer;
  }

  /**
   * Reads the body of {@code request}, at most {@code maxBytes} of it.
   *
   * <p>A multipart upload is parsed by the container, with the servlet's multipart config, so
   * that {@code getParts()} works for the handler; its fingerprint body is the parts in order
   * (name, file name, type, bytes), which a client's random boundary does not change. A form
   * whose body an earlier filter consumed (by calling {@code getParameter}) is rebuilt from the
   * container's parameters, less those of the query string.
   *
   * @return the request, or null if the body is over {@code maxBytes}
   * @throws IOException if the body cannot be read
   */
  static CachedBodyRequest read(HttpServletRequest request, long maxBytes) throws IOException {
    String type = mediaType(request.getContentType());
    if (type.equals(MULTIPART)) {
      Collection<Part> parts = containerParts(request);
      if (parts != null) {
        byte[] canonical = canonicalParts(parts, maxBytes);
        return canonical == null
            ? null
            : new CachedBodyRequest(request, NO_BYTES, 0, canonical, true);
      }
    }
    byte[] body;
    try (InputStream in = request.getInputStream()) {
      body = readBody(in, request.getContentLengthLong(), maxBytes);
    }
    if (body.length > maxBytes) {
      return null;
    }
    if (body.length == 0 && type.equals(FORM) && request.getContentLengthLong() != 0) {
      // The container read the form for an earlier filter's getParameter: the stream is empty.
      return new CachedBodyRequest(request, body, 0, formBody(request), true);
    }
    return new CachedBodyRequest(request, body, body.length, body, false);
  }

  /**
   * Reads the body, or one byte past {@code maxBytes} of it. A declared length sizes the buffer
   * (a small body costs a small array, not a read buffer); a body longer than declared is read on.
   */
  private static byte[] readBody(InputStream in, long declared, long maxBytes)
      throws IOException {
    long limit = Math.min(Integer.MAX_VALUE - 8, maxBytes + 1);
    if (declared < 0 || declared >= limit) {
      return in.readNBytes((int) limit);
    }
    byte[] body = in.readNBytes((int) declared + 1);
    if (body.length <= declared) {
      return body;
    }
    byte[] rest = in.readNBytes((int) (limit - body.length));
    byte[] whole = Arrays.copyOf(body, body.length + rest.length);
    System.arraycopy(rest, 0, whole, body.length, rest.length);
    return whole;
  }

  /** The bytes the fingerprint covers: the body, or the canonical form of parsed parameters. */
  byte[] fingerprintBody() {
    return fingerprintBody;
  }

  /** The container's parts, or null if it cannot parse them (no multipart config, a bad body). */
  private static Collection<Part> containerParts(HttpServletRequest request) throws IOException {
    try {
      return request.getParts();
    } catch (IllegalStateException | ServletException e) {
      // The handler's own getParts() meets the same refusal; the raw body is fingerprinted.
      return null;
    }
  }

  /** Parts as length-prefixed fields, or null if their bytes are over {@code maxBytes}. */
  private static byte[] canonicalParts(Collection<Part> parts, long maxBytes) throws IOException {
    long total = 0;
    for (Part part : parts) {
      total += part.getSize();
    }
    if (total > maxBytes) {
      return null;
    }
    ByteArrayOutputStream bytes = new ByteArrayOutputStream((int) total + 64 * parts.size());
    DataOutputStream out = new DataOutputStream(bytes);
    for (Part part : parts) {
      writeField(out, part.getName());
      writeField(out, part.getSubmittedFileName());
      writeField(out, part.getContentType());
      out.writeLong(part.getSize());
      try (InputStream in = part.getInputStream()) {
        in.transferTo(out);
      }
    }
    out.flush();
    return bytes.toByteArray();
  }

  private static void writeField(DataOutputStream out, String value) throws IOException {
    if (value == null) {
      out.writeInt(-1);
      return;
    }
    byte[] utf8 = value.getBytes(StandardCharsets.UTF_8);
    out.writeInt(utf8.length);
    out.write(utf8);
  }

  /**
   * The form body rebuilt from the container's parameters: each field that the query string does
   * not account for, url-encoded in the request's charset, in the container's order.
   */
  private static byte[] formBody(HttpServletRequest request) {
    Map<String, Integer> inQuery = new HashMap<>();
    String query = request.getQueryString();
    if (query != null) {
      Map<String, List<String>> queryParameters = new LinkedHashMap<>();
      addDecoded(queryParameters, query, StandardCharsets.UTF_8);
      queryParameters.forEach((name, values) -> inQuery.put(name, values.size()));
    }
    Charset charset;
    try {
      charset = charsetOf(request.getCharacterEncoding());
    } catch (UnsupportedEncodingException e) {
      charset = StandardCharsets.UTF_8;
    }
    StringBuilder form = new StringBuilder();
    for (Map.Entry<String, String[]> field : request.getParameterMap().entrySet()) {
      String[] values = field.getValue();
      // Query values come first in the container's list (Servlet 6.1 §3.1).
      for (int i = inQuery.getOrDefault(field.getKey(), 0); i < values.length; i++) {
        if (form.length() > 0) {
          form.append('&');
        }
        form.append(URLEncoder.encode(field.getKey(), charset))
            .append('=')
            .append(URLEncoder.encode(values[i], charset));
      }
    }
    return form.toString().getBytes(StandardCharsets.US_ASCII);
  }

  private static String mediaType(String contentType) {
    if (contentType == null) {
      return "";
    }
    int semicolon = contentType.indexOf(';');
    return (semicolon < 0 ? contentType : contentType.substring(0, semicolon))
        .trim()
        .toLowerCase(Locale.ROOT);
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
    // Not executing (fail-open, or a transactional refusal in front): the container's own.
    return asyncCompletion == null ? super.startAsync() : startAsync(this, capturedResponse);
  }

  @Override
  public AsyncContext startAsync(ServletRequest request, ServletResponse response) {
    AsyncContext started = super.startAsync(request, response);
    if (asyncCompletion == null) {
      return started;
    }
    if (asyncContext == null) {
      asyncContext = new CapturedAsyncContext(started, asyncCompletion);
      // Found again by the filter when the container dispatches the request back (ASYNC).
      setAttribute(CapturedAsyncContext.ATTRIBUTE, asyncContext);
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
    return parsedByContainer ? super.getContentLength() : length;
  }

  @Override
  public long getContentLengthLong() {
    return parsedByContainer ? super.getContentLengthLong() : length;
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

  /**
   * Query parameters from the container, then form fields from the cached body; or, if the
   * container parsed the body, the container's parameters unchanged.
   */
  private Map<String, String[]> parameters() {
    if (parameters != null) {
      return parameters;
    }
    if (parsedByContainer) {
      parameters = new LinkedHashMap<>(super.getParameterMap());
      return parameters;
    }
    Map<String, List<String>> merged = new LinkedHashMap<>();
    String query = getQueryString();
    if (query != null) {
      addDecoded(merged, query, StandardCharsets.UTF_8);
    }
    if (!bodyUsed && mediaType(getContentType()).equals(FORM)) {
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
    return charsetOf(getCharacterEncoding());
  }

  private static Charset charsetOf(String encoding) throws UnsupportedEncodingException {
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
