package io.idemkey.filter;

import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/**
 * The errors the filter itself answers with, as RFC 9457 {@code application/problem+json} (SPEC
 * §9): {@code type} is {@code urn:idemkey:problem:<name>}. Never a stack trace, never another
 * client's data: the detail is written by the filter.
 */
enum Problem {
  MISSING_KEY(400, "missing-key", "Idempotency-Key header missing"),
  INVALID_KEY(400, "invalid-key", "Invalid Idempotency-Key header"),
  INVALID_SCOPE(400, "invalid-scope", "Invalid scope header"),
  KEY_REUSED(422, "key-reused", "Idempotency-Key reused for a different request"),
  REQUEST_TOO_LARGE(413, "request-too-large", "Request body too large"),
  IN_PROGRESS(409, "in-progress", "A request with this Idempotency-Key is in progress"),
  RESPONSE_NOT_STORED(409, "response-not-stored", "The original response was not stored"),
  KEY_EXPIRED(409, "key-expired", "Idempotency-Key already used and expired"),
  STORE_UNAVAILABLE(503, "store-unavailable", "Idempotency store unavailable"),
  TRANSACTION_ABORTED(500, "transaction-aborted", "The request's transaction was aborted");

  static final String CONTENT_TYPE = "application/problem+json";

  private final int status;
  private final String name;
  private final String title;

  Problem(int status, String name, String title) {
    this.status = status;
    this.name = name;
    this.title = title;
  }

  int status() {
    return status;
  }

  String type() {
    return "urn:idemkey:problem:" + name;
  }

  /** The JSON document for {@code detail}. */
  byte[] body(String detail) {
    String json =
        "{\"type\":" + quote(type()) + ",\"title\":" + quote(title) + ",\"status\":" + status
            + ",\"detail\":" + quote(detail) + "}";
    return json.getBytes(StandardCharsets.UTF_8);
  }

  /**
   * Answers with this problem.
   *
   * @throws IOException if the response cannot be written
   */
  void write(HttpServletResponse response, String detail) throws IOException {
    write(response, detail, null);
  }

  /**
   * Answers with this problem and a {@code Retry-After} of at least one second.
   *
   * @throws IOException if the response cannot be written
   */
  void write(HttpServletResponse response, String detail, Duration retryAfter)
      throws IOException {
    byte[] body = body(detail);
    response.resetBuffer();
    response.setStatus(status);
    response.setContentType(CONTENT_TYPE);
    response.setHeader("Cache-Control", "no-store");
    if (retryAfter != null) {
      long seconds = Math.max(1, (retryAfter.toMillis() + 999) / 1000);
      response.setHeader("Retry-After", Long.toString(seconds));
    }
    response.setContentLength(body.length);
    response.getOutputStream().write(body);
  }

  static String quote(String value) {
    StringBuilder json = new StringBuilder(value.length() + 2).append('"');
    for (int i = 0; i < value.length(); i++) {
      char c = value.charAt(i);
      switch (c) {
        case '"' -> json.append("\\\"");
        case '\\' -> json.append("\\\\");
        case '\n' -> json.append("\\n");
        case '\r' -> json.append("\\r");
        case '\t' -> json.append("\\t");
        default -> {
          if (c < 0x20) {
            json.append(String.format("\\u%04x", (int) c));
          } else {
            json.append(c);
          }
        }
      }
    }
    return json.append('"').toString();
  }
}
