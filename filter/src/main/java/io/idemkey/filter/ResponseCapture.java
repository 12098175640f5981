package io.idemkey.filter;

import io.idemkey.store.ResponseHeader;
import io.idemkey.store.StoredResponse;
import jakarta.servlet.ServletOutputStream;
import jakarta.servlet.WriteListener;
import jakarta.servlet.http.HttpServletResponse;
import jakarta.servlet.http.HttpServletResponseWrapper;
import java.io.IOException;
import java.io.OutputStream;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.io.Writer;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.Charset;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.LinkedHashMap;
import java.util.Set;

/**
 * A response that keeps the handler's body in one buffer, behind both {@link #getOutputStream()}
 * and {@link #getWriter()}, so that nothing reaches the client until the record is stored (SPEC
 * §6). Status and headers go to the wrapped response, which stays uncommitted: flushes, {@code
 * sendError} and {@code sendRedirect} are held back too.
 *
 * <p>The buffer never holds more than {@code maxBodyBytes}. A body that outgrows it is streamed:
 * the {@link Overflow} settles the key first, then the buffered bytes and every later write go
 * straight to the client.
 *
 * <p>Not thread-safe, like the response it wraps.
 */
final class ResponseCapture extends HttpServletResponseWrapper {

  /** What the filter does when the body outgrows {@code maxBodyBytes}. */
  interface Overflow {
    /**
     * Called once, when the body outgrows the limit, before any of it reaches the client: the
     * key is to be completed as "response not stored" (or released, for a release status).
     *
     * @param notStored the status and headers so far, without the body
     * @throws IOException if the key could not be settled: the response must then not reach the
     *     client, and the capture discards the rest of the body ({@link #isAbandoned()})
     */
    void beforeStreaming(StoredResponse notStored) throws IOException;
  }

  /**
   * Headers never stored or replayed: hop-by-hop, Date and Set-Cookie (SPEC §6), the length
   * (recomputed), and Server, which the container sets again on every response.
   */
  static final Set<String> NEVER_STORED =
      Set.of("connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
          "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "date",
          "set-cookie", "server",
          "content-length");

  /** A byte buffer that never grows past its limit. */
  private static final class Buffer {
    private final int limit;
    private byte[] bytes = new byte[0];
    private int count;

    Buffer(int limit) {
      this.limit = limit;
    }

    /** Appends; the caller has checked that the result stays within the limit. */
    void write(byte[] source, int offset, int length) {
      int needed = count + length;
      if (needed > bytes.length) {
        long grown = Math.max(needed, Math.max(256L, 2L * bytes.length));
        bytes = Arrays.copyOf(bytes, (int) Math.min(limit, grown));
      }
      System.arraycopy(source, offset, bytes, count, length);
      count = needed;
    }

    boolean fits(int length) {
      return (long) count + length <= limit;
    }

    void writeTo(OutputStream out) throws IOException {
      out.write(bytes, 0, count);
    }

    byte[] toByteArray() {
      return Arrays.copyOf(bytes, count);
    }

    int size() {
      return count;
    }

    int capacity() {
      return bytes.length;
    }

    void clear() {
      count = 0;
    }

    /** Clears and gives the memory back. */
    void release() {
      bytes = new byte[0];
      count = 0;
    }
  }

  /** Where the body is, in the order a response meets these states. */
  private enum State {
    /** In the buffer, within the limit. */
    BUFFERING,
    /** Past the limit: going straight to the client. */
    STREAMING,
    /** Past the limit, but the key could not be settled: discarded. */
    ABANDONED
  }

  private final Set<String> excludedHeaders;
  private final Buffer body;
  private final Overflow overflow;
  /** Every byte the handler writes, whichever of the stream or writer it uses. */
  private final OutputStream sink = new OutputStream() {
    @Override
    public void write(int b) throws IOException {
      write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public void write(byte[] bytes, int offset, int length) throws IOException {
      writeBody(bytes, offset, length);
    }

    @Override
    public void flush() throws IOException {
      if (state == State.STREAMING) {
        client.flush();
      }
    }
  };
  private State state = State.BUFFERING;
  private OutputStream client;
  private ServletOutputStream stream;
  private PrintWriter writer;
  private Charset writerCharset;
  private boolean localeSet;
  private long declaredLength = -1;
  /**
   * The headers that the container and the filters in front had set before the handler ran
   * (lower-case name to values, in their order): they set them again on a replay, so they are not
   * stored.
   */
  private final Map<String, List<String>> headersBefore;
  /** The same headers' names as they were spelled. */
  private final List<String> namesBefore;

  /**
   * A capture of {@code response}'s body.
   *
   * @param excludedHeaders header names (lower case) never stored, beyond the built-in ones
   * @param maxBodyBytes the most the buffer holds; past it, {@code overflow} is called
   */
  ResponseCapture(
      HttpServletResponse response,
      Set<String> excludedHeaders,
      long maxBodyBytes,
      Overflow overflow) {
    super(response);
    this.headersBefore = new LinkedHashMap<>();
    this.namesBefore = new ArrayList<>();
    for (String name : response.getHeaderNames()) {
      String lower = name.toLowerCase(Locale.ROOT);
      if (!headersBefore.containsKey(lower)) { // Tomcat lists a name once per value
        headersBefore.put(lower, List.copyOf(response.getHeaders(name)));
        namesBefore.add(name);
      }
    }
    this.excludedHeaders = excludedHeaders;
    this.body = new Buffer((int) Math.min(Integer.MAX_VALUE - 8, maxBodyBytes));
    this.overflow = overflow;
  }

  @Override
  public ServletOutputStream getOutputStream() {
    if (writer != null) {
      throw new IllegalStateException("getWriter() has already been called");
    }
    if (stream == null) {
      stream = new ServletOutputStream() {
        @Override
        public void write(int b) throws IOException {
          sink.write(b);
        }

        @Override
        public void write(byte[] bytes, int offset, int length) throws IOException {
          sink.write(bytes, offset, length);
        }

        @Override
        public void flush() throws IOException {
          sink.flush();
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

  /**
   * The handler's writer, over the same buffer.
   *
   * @throws IOException if the container's writer cannot be had (an unsupported charset)
   */
  @Override
  public PrintWriter getWriter() throws IOException {
    if (stream != null) {
      throw new IllegalStateException("getOutputStream() has already been called");
    }
    if (writer == null) {
      // The container's own getWriter() settles the charset and the Content-Type exactly as it
      // would without the filter (Tomcat adds ";charset=ISO-8859-1", Jetty infers UTF-8 for
      // text/html and adds it, but not for application/json), and later setContentType,
      // setCharacterEncoding and setLocale calls then behave as they would. The wrapped response
      // is in writer mode from here on: the body is sent through its writer.
      getResponse().getWriter();
      writerCharset = Charset.forName(getResponse().getCharacterEncoding());
      writer = new PrintWriter(new OutputStreamWriter(sink, writerCharset));
    }
    return writer;
  }

  @Override
  public void setLocale(Locale locale) {
    super.setLocale(locale);
    localeSet = locale != null;
  }

  @Override
  public void flushBuffer() throws IOException {
    flushWriter();
    if (state == State.STREAMING) {
      client.flush();
      super.flushBuffer();
    }
  }

  @Override
  public boolean isCommitted() {
    return state == State.STREAMING;
  }

  @Override
  public void resetBuffer() {
    requireNotStreaming();
    flushWriter();
    body.clear();
  }

  /** Clears status, headers, body and the choice between stream and writer. */
  @Override
  public void reset() {
    requireNotStreaming();
    super.reset();
    body.clear();
    state = State.BUFFERING;
    stream = null;
    writer = null;
    writerCharset = null;
    localeSet = false;
    declaredLength = -1;
  }

  @Override
  public void setContentLength(int length) {
    setContentLengthLong(length);
  }

  /** Kept for a streamed body; a buffered one is sent with its own length. */
  @Override
  public void setContentLengthLong(long length) {
    if (state == State.STREAMING) {
      super.setContentLengthLong(length);
    } else {
      declaredLength = length;
    }
  }

  @Override
  public void setBufferSize(int size) {
    // Everything is buffered until the record is stored.
  }

  /**
   * Records the error status; the message, if any, becomes a plain-text body.
   *
   * @throws IllegalStateException if the body is already streaming to the client
   */
  @Override
  public void sendError(int status, String message) throws IOException {
    resetBuffer();
    setStatus(status);
    if (message != null) {
      // After getWriter() the container keeps its charset: encode the message in it.
      Charset charset = writer != null ? writerCharset : StandardCharsets.UTF_8;
      setContentType("text/plain;charset=" + charset.name());
      byte[] bytes = message.getBytes(charset);
      writeBody(bytes, 0, bytes.length);
    }
  }

  @Override
  public void sendError(int status) throws IOException {
    sendError(status, null);
  }

  @Override
  public void sendRedirect(String location) {
    sendRedirect(location, HttpServletResponse.SC_FOUND, true);
  }

  // The three overloads below are Servlet 6.1's. Without them a container's 6.1 wrapper passes
  // the redirect straight to the client. No @Override: the main code compiles against 6.0.

  /** Records the redirect, as {@link #sendRedirect(String, int, boolean)} with a cleared body. */
  public void sendRedirect(String location, int status) {
    sendRedirect(location, status, true);
  }

  /** Records a 302 redirect, as {@link #sendRedirect(String, int, boolean)}. */
  public void sendRedirect(String location, boolean clearBuffer) {
    sendRedirect(location, HttpServletResponse.SC_FOUND, clearBuffer);
  }

  /**
   * Records the redirect status and {@code Location}; the body is cleared if {@code clearBuffer}.
   *
   * @throws IllegalStateException if the body is already streaming to the client
   */
  public void sendRedirect(String location, int status, boolean clearBuffer) {
    requireNotStreaming();
    if (clearBuffer) {
      resetBuffer();
    }
    setStatus(status);
    setHeader("Location", location);
  }

  private void requireNotStreaming() {
    if (state == State.STREAMING) {
      throw new IllegalStateException("the response is committed: its body is streaming");
    }
  }

  private void writeBody(byte[] bytes, int offset, int length) throws IOException {
    if (state == State.BUFFERING && !body.fits(length)) {
      startStreaming();
    }
    switch (state) {
      case BUFFERING -> body.write(bytes, offset, length);
      case STREAMING -> client.write(bytes, offset, length);
      case ABANDONED -> { }
    }
  }

  /** Settles the key through the overflow, then sends what is buffered (SPEC §6). */
  private void startStreaming() throws IOException {
    try {
      overflow.beforeStreaming(StoredResponse.withoutBody(getStatus(), storedHeaders()));
    } catch (IOException e) {
      state = State.ABANDONED;
      body.release();
      return;
    }
    HttpServletResponse response = (HttpServletResponse) getResponse();
    if (declaredLength >= 0) {
      response.setContentLengthLong(declaredLength);
    }
    client = clientStream(response);
    state = State.STREAMING;
    body.writeTo(client);
    body.release();
  }

  /** The wrapped response's body: its stream, or its writer if the handler used ours. */
  private OutputStream clientStream(HttpServletResponse response) throws IOException {
    return writer != null
        ? new DecodingStream(response.getWriter(), writerCharset)
        : response.getOutputStream();
  }

  private void flushWriter() {
    if (writer != null) {
      writer.flush();
    }
  }

  /**
   * True once the body outgrew the limit and is going to the client as the handler writes. Flushes
   * the handler's writer first, which may itself start the streaming.
   */
  boolean isStreaming() {
    flushWriter();
    return state == State.STREAMING;
  }

  /**
   * True if the body outgrew the limit but {@link Overflow#beforeStreaming} failed: nothing was
   * sent, and the body is lost. Flushes the handler's writer first.
   */
  boolean isAbandoned() {
    flushWriter();
    return state == State.ABANDONED;
  }

  /** The bytes the buffer has room for now: never more than the limit. */
  int bufferCapacity() {
    return body.capacity();
  }

  /** The record to store: status, headers less the never-stored and excluded ones, and body. */
  StoredResponse toStoredResponse() {
    flushWriter();
    return new StoredResponse(getStatus(), storedHeaders(), body.toByteArray(), true);
  }

  private List<ResponseHeader> storedHeaders() {
    HttpServletResponse response = (HttpServletResponse) getResponse();
    List<ResponseHeader> headers = new ArrayList<>();
    boolean hasContentType = false;
    boolean hasContentLanguage = false;
    Set<String> seen = new HashSet<>();
    for (String name : response.getHeaderNames()) {
      String lower = name.toLowerCase(Locale.ROOT);
      // Tomcat lists a name once per value; Jetty once.
      if (!seen.add(lower) || NEVER_STORED.contains(lower) || excludedHeaders.contains(lower)) {
        continue;
      }
      hasContentType |= lower.equals("content-type");
      hasContentLanguage |= lower.equals("content-language");
      for (String value : setByHandler(lower, List.copyOf(response.getHeaders(name)))) {
        headers.add(new ResponseHeader(name, value));
      }
    }
    // Tomcat keeps these two outside its header list until it commits.
    String contentType = response.getContentType();
    if (!hasContentType && contentType != null && !excludedHeaders.contains("content-type")) {
      headers.add(new ResponseHeader("Content-Type", contentType));
    }
    if (!hasContentLanguage && localeSet && !excludedHeaders.contains("content-language")) {
      headers.add(new ResponseHeader("Content-Language", response.getLocale().toLanguageTag()));
    }
    return headers;
  }

  /**
   * The values of a header that the handler set: all of them if it replaced what was there
   * before it ran, the ones it added if it only added, none if it left the header alone.
   */
  private List<String> setByHandler(String lowerName, List<String> values) {
    List<String> before = headersBefore.get(lowerName);
    if (before == null) {
      return values;
    }
    if (values.size() >= before.size() && values.subList(0, before.size()).equals(before)) {
      return values.subList(before.size(), values.size());
    }
    return values;
  }

  /**
   * Discards what the handler set (status, headers, body and the choice between stream and
   * writer), so that the filter can answer in its place; the headers that the container and the
   * filters in front had set before the handler ran are kept.
   *
   * @throws IllegalStateException if the body is already streaming to the client
   */
  void discardHandlersResponse() {
    reset();
    HttpServletResponse response = (HttpServletResponse) getResponse();
    for (String name : namesBefore) {
      for (String value : headersBefore.get(name.toLowerCase(Locale.ROOT))) {
        response.addHeader(name, value);
      }
    }
  }

  /**
   * Sends the captured response to the client, or ends a streamed one.
   *
   * @throws IOException if the client connection fails
   */
  void sendToClient() throws IOException {
    HttpServletResponse response = (HttpServletResponse) getResponse();
    flushWriter();
    if (state == State.BUFFERING && body.size() == 0) {
      // Nothing to write: the container ends the response once the filters in front have
      // returned, as it would the handler's. A length of 0, or a flush, would commit it now, behind
      // the back of a wrapper in front that writes headers when the response commits (Spring
      // Security's HeaderWriterFilter counts only bodies over 0 bytes).
      return;
    }
    if (state == State.BUFFERING) {
      response.setContentLength(body.size());
      client = clientStream(response);
      body.writeTo(client);
    }
    if (client != null) {
      client.flush();
    }
    response.flushBuffer();
  }

  /**
   * Decodes bytes in one charset and writes the characters to a writer: the way from the
   * handler's writer, through the buffer, to the container's writer. A character split between
   * two writes waits for the second. Not thread-safe.
   */
  private static final class DecodingStream extends OutputStream {
    private final Writer out;
    private final CharsetDecoder decoder;
    private final CharBuffer chars = CharBuffer.allocate(8192);
    private byte[] pending = new byte[0];

    DecodingStream(Writer out, Charset charset) {
      this.out = out;
      this.decoder = charset.newDecoder()
          .onMalformedInput(CodingErrorAction.REPLACE)
          .onUnmappableCharacter(CodingErrorAction.REPLACE);
    }

    @Override
    public void write(int b) throws IOException {
      write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public void write(byte[] bytes, int offset, int length) throws IOException {
      ByteBuffer in;
      if (pending.length == 0) {
        in = ByteBuffer.wrap(bytes, offset, length);
      } else {
        byte[] joined = Arrays.copyOf(pending, pending.length + length);
        System.arraycopy(bytes, offset, joined, pending.length, length);
        in = ByteBuffer.wrap(joined);
      }
      CoderResult result;
      do {
        result = decoder.decode(in, chars, false);
        chars.flip();
        out.write(chars.array(), chars.position(), chars.remaining());
        chars.clear();
      } while (result.isOverflow());
      pending = new byte[in.remaining()];
      in.get(pending);
    }

    @Override
    public void flush() throws IOException {
      out.flush();
    }
  }
}
