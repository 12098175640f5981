package io.idemkey.filter;

import io.idemkey.store.ResponseHeader;
import io.idemkey.store.StoredResponse;
import jakarta.servlet.ServletOutputStream;
import jakarta.servlet.WriteListener;
import jakarta.servlet.http.HttpServletResponse;
import jakarta.servlet.http.HttpServletResponseWrapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * A response that keeps the handler's body in one buffer, behind both {@link #getOutputStream()}
 * and {@link #getWriter()}, so that nothing reaches the client until the record is stored (SPEC
 * §6). Status and headers go to the wrapped response, which stays uncommitted: flushes, {@code
 * sendError} and {@code sendRedirect} are held back too.
 *
 * <p>Not thread-safe, like the response it wraps.
 */
final class ResponseCapture extends HttpServletResponseWrapper {

  /**
   * Headers never stored or replayed: hop-by-hop, Date and Set-Cookie (SPEC §6), the length
   * (recomputed), and Server, which the container sets again on every response.
   */
  static final Set<String> NEVER_STORED =
      Set.of("connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
          "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "date",
          "set-cookie", "server",
          "content-length");

  /** A byte buffer whose contents can be written out without a copy. */
  private static final class Buffer extends ByteArrayOutputStream {
    void writeTo(ServletOutputStream out) throws IOException {
      out.write(buf, 0, count);
    }

    byte[] bytes() {
      return Arrays.copyOf(buf, count);
    }
  }

  private final Buffer body = new Buffer();
  private ServletOutputStream stream;
  private PrintWriter writer;

  ResponseCapture(HttpServletResponse response) {
    super(response);
  }

  @Override
  public ServletOutputStream getOutputStream() {
    if (writer != null) {
      throw new IllegalStateException("getWriter() has already been called");
    }
    if (stream == null) {
      stream = new ServletOutputStream() {
        @Override
        public void write(int b) {
          body.write(b);
        }

        @Override
        public void write(byte[] bytes, int offset, int length) {
          body.write(bytes, offset, length);
        }

        @Override
        public boolean isReady() {
          return true;
        }

        @Override
        public void setWriteListener(WriteListener listener) {
          try {
            listener.onWritePossible();
          } catch (IOException e) {
            listener.onError(e);
          }
        }
      };
    }
    return stream;
  }

  @Override
  public PrintWriter getWriter() {
    if (stream != null) {
      throw new IllegalStateException("getOutputStream() has already been called");
    }
    if (writer == null) {
      String encoding = getCharacterEncoding();
      Charset charset = encoding == null ? StandardCharsets.ISO_8859_1 : Charset.forName(encoding);
      writer = new PrintWriter(new OutputStreamWriter(body, charset));
    }
    return writer;
  }

  @Override
  public void flushBuffer() {
    flushWriter();
  }

  @Override
  public boolean isCommitted() {
    return false;
  }

  @Override
  public void resetBuffer() {
    flushWriter();
    body.reset();
  }

  @Override
  public void reset() {
    super.reset();
    resetBuffer();
  }

  @Override
  public void setContentLength(int length) {
    // The length is set from the captured body when it is sent.
  }

  @Override
  public void setContentLengthLong(long length) {
    // As setContentLength.
  }

  @Override
  public void setBufferSize(int size) {
    // Everything is buffered until the record is stored.
  }

  /** Records the error status; the message, if any, becomes a plain-text body. */
  @Override
  public void sendError(int status, String message) {
    resetBuffer();
    setStatus(status);
    if (message != null) {
      setContentType("text/plain;charset=UTF-8");
      body.writeBytes(message.getBytes(StandardCharsets.UTF_8));
    }
  }

  @Override
  public void sendError(int status) {
    sendError(status, null);
  }

  @Override
  public void sendRedirect(String location) {
    resetBuffer();
    setStatus(HttpServletResponse.SC_FOUND);
    setHeader("Location", location);
  }

  private void flushWriter() {
    if (writer != null) {
      writer.flush();
    }
  }

  int bodyLength() {
    flushWriter();
    return body.size();
  }

  /**
   * The record to store: status, headers less the never-stored and {@code excluded} ones (lower
   * case), and the body, or no body when it is over {@code maxBodyBytes}.
   */
  StoredResponse toStoredResponse(Set<String> excluded, long maxBodyBytes) {
    HttpServletResponse response = (HttpServletResponse) getResponse();
    List<ResponseHeader> headers = new ArrayList<>();
    boolean hasContentType = false;
    Set<String> seen = new HashSet<>();
    for (String name : response.getHeaderNames()) {
      String lower = name.toLowerCase(Locale.ROOT);
      // Tomcat lists a name once per value; Jetty once.
      if (!seen.add(lower) || NEVER_STORED.contains(lower) || excluded.contains(lower)) {
        continue;
      }
      hasContentType |= lower.equals("content-type");
      for (String value : response.getHeaders(name)) {
        headers.add(new ResponseHeader(name, value));
      }
    }
    String contentType = response.getContentType();
    if (!hasContentType && contentType != null) {
      headers.add(new ResponseHeader("Content-Type", contentType));
    }
    int status = response.getStatus();
    return bodyLength() > maxBodyBytes
        ? StoredResponse.withoutBody(status, headers)
        : new StoredResponse(status, headers, body.bytes(), true);
  }

  /**
   * Sends the captured response to the client.
   *
   * @throws IOException if the client connection fails
   */
  void sendToClient() throws IOException {
    HttpServletResponse response = (HttpServletResponse) getResponse();
    response.setContentLength(bodyLength());
    body.writeTo(response.getOutputStream());
    response.flushBuffer();
  }
}
