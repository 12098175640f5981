package io.idemkey.benchmarks;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

/**
 * One keep-alive HTTP/1.1 connection to a server on 127.0.0.1: writes a request, reads the
 * response (a {@code Content-Length} or chunked body, read and discarded), and reconnects when the
 * server closes. Lighter than {@code java.net.http.HttpClient}, which matters when the load
 * generator shares two cores with the server and its database.
 *
 * <p>Not thread-safe: one thread per connection.
 */
final class HttpConnection implements AutoCloseable {

  /** What the harness needs of a response. */
  record Response(int status, boolean replayed) {}

  private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();

  private final int port;
  private final int timeoutMillis;
  private final StringBuilder line = new StringBuilder(128);
  private final byte[] skipBuffer = new byte[8192];
  private Socket socket;
  private InputStream in;
  private OutputStream out;

  HttpConnection(int port, int timeoutMillis) {
    if (!LOOPBACK.getHostAddress().equals("127.0.0.1")) {
      throw new IllegalStateException("loopback is " + LOOPBACK + ", expected 127.0.0.1");
    }
    this.port = port;
    this.timeoutMillis = timeoutMillis;
  }

  /** The bytes of a request, {@code Connection} left to HTTP/1.1's keep-alive default. */
  static byte[] request(String method, String path, String extraHeaders, byte[] body) {
    String head =
        method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + "Content-Type: application/json\r\nContent-Length: " + body.length + "\r\n"
            + extraHeaders + "\r\n";
    byte[] headBytes = head.getBytes(StandardCharsets.US_ASCII);
    byte[] request = new byte[headBytes.length + body.length];
    System.arraycopy(headBytes, 0, request, 0, headBytes.length);
    System.arraycopy(body, 0, request, headBytes.length, body.length);
    return request;
  }

  /**
   * Sends one request and reads its whole response.
   *
   * @throws IOException if the connection fails or times out; the connection is closed and the
   *     next call opens a new one
   */
  Response send(byte[] request) throws IOException {
    try {
      if (socket == null) {
        open();
      }
      out.write(request);
      out.flush();
      return readResponse();
    } catch (IOException e) {
      close();
      throw e;
    }
  }

  private void open() throws IOException {
    Socket opened = new Socket();
    opened.setTcpNoDelay(true);
    opened.setSoTimeout(timeoutMillis);
    opened.connect(new InetSocketAddress(LOOPBACK, port), timeoutMillis);
    socket = opened;
    in = new BufferedInputStream(opened.getInputStream(), 16384);
    out = new BufferedOutputStream(opened.getOutputStream(), 4096);
  }

  private Response readResponse() throws IOException {
    String statusLine = readLine();
    if (!statusLine.startsWith("HTTP/1.1 ") || statusLine.length() < 12) {
      throw new IOException("not an HTTP/1.1 status line: " + statusLine);
    }
    int status = Integer.parseInt(statusLine.substring(9, 12));
    long contentLength = -1;
    boolean chunked = false;
    boolean replayed = false;
    boolean closing = false;
    for (String header = readLine(); !header.isEmpty(); header = readLine()) {
      int colon = header.indexOf(':');
      if (colon <= 0) {
        continue;
      }
      String name = header.substring(0, colon).trim().toLowerCase(Locale.ROOT);
      String value = header.substring(colon + 1).trim();
      switch (name) {
        case "content-length" -> contentLength = Long.parseLong(value);
        case "transfer-encoding" -> chunked = value.toLowerCase(Locale.ROOT).contains("chunked");
        case "idempotent-replayed" -> replayed = value.equalsIgnoreCase("true");
        case "connection" -> closing = value.equalsIgnoreCase("close");
        default -> { }
      }
    }
    if (chunked) {
      for (long size = chunkSize(); size > 0; size = chunkSize()) {
        skip(size);
        readLine();
      }
      while (!readLine().isEmpty()) {
        // trailer fields
      }
    } else if (contentLength > 0) {
      skip(contentLength);
    } else if (contentLength < 0 && status >= 200 && status != 204 && status != 304) {
      closing = true; // a body delimited by the end of the connection: read it to the end
      while (in.read(skipBuffer) >= 0) {
        // discard
      }
    }
    if (closing) {
      close();
    }
    return new Response(status, replayed);
  }

  private long chunkSize() throws IOException {
    String size = readLine();
    int extension = size.indexOf(';');
    return Long.parseLong((extension >= 0 ? size.substring(0, extension) : size).trim(), 16);
  }

  private void skip(long bytes) throws IOException {
    long left = bytes;
    while (left > 0) {
      int read = in.read(skipBuffer, 0, (int) Math.min(skipBuffer.length, left));
      if (read < 0) {
        throw new EOFException("connection closed with " + left + " body bytes unread");
      }
      left -= read;
    }
  }

  private String readLine() throws IOException {
    line.setLength(0);
    for (int b = in.read(); b != '\n'; b = in.read()) {
      if (b < 0) {
        throw new EOFException("connection closed by the server");
      }
      if (b != '\r') {
        line.append((char) b);
      }
    }
    return line.toString();
  }

  @Override
  public void close() {
    if (socket != null) {
      try {
        socket.close();
      } catch (IOException e) {
        // closing anyway
      }
      socket = null;
    }
  }
}
