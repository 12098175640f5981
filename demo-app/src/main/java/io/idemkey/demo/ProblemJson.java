package io.idemkey.demo;

import java.nio.charset.StandardCharsets;
import org.eclipse.jetty.http.HttpStatus;

/**
 * An {@code application/problem+json} body (RFC 9457) for the demo's own errors: {@code type}
 * {@code about:blank}, the status's {@code title}, the {@code status} and a {@code detail} meant
 * for the client, never an exception's class, message or stack. Stateless.
 */
final class ProblemJson {

  static final String CONTENT_TYPE = "application/problem+json";

  private ProblemJson() {}

  /** The body for {@code status} with {@code detail}, in UTF-8. */
  static byte[] of(int status, String detail) {
    String title = HttpStatus.getMessage(status);
    return ("{\"type\":\"about:blank\",\"title\":\"" + escape(title) + "\",\"status\":" + status
            + ",\"detail\":\"" + escape(detail) + "\"}")
        .getBytes(StandardCharsets.UTF_8);
  }

  /**
   * What the demo tells a client about an error with {@code status} that it did not describe
   * itself (Jetty's own errors, and exceptions from the handlers).
   */
  static String detailFor(int status) {
    return switch (status) {
      case 400 -> "the request could not be read";
      case 404 -> "there is nothing at this path";
      case 405 -> "this method is not allowed on this path";
      case 408 -> "the request body did not arrive in time";
      case 413 -> "the request body is too large";
      case 414 -> "the request URI is too long";
      case 431 -> "the request headers are too large";
      case 503 -> "the server is unavailable or shutting down; retry later";
      default -> status >= 500
          ? "the server failed to answer this request; the error was logged"
          : HttpStatus.getMessage(status);
    };
  }

  private static String escape(String text) {
    StringBuilder out = new StringBuilder(text.length());
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (c == '"' || c == '\\') {
        out.append('\\').append(c);
      } else if (c < 0x20) {
        out.append(String.format("\\u%04x", (int) c));
      } else {
        out.append(c);
      }
    }
    return out.toString();
  }
}
