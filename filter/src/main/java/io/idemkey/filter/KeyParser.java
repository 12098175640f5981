package io.idemkey.filter;

/**
 * The parser of {@code Idempotency-Key} header values (SPEC §2): an RFC 8941 sf-string
 * ({@code "abc"}, with {@code \"} and {@code \\} escapes, each character 0x20–0x7E) or a bare
 * token (each character 0x21–0x7E, without {@code "} or {@code ,}), 1 to 255 characters after
 * unquoting. Surrounding spaces and tabs are ignored, as HTTP does.
 *
 * <p>Total: every input gives a key or a precise reason, never an exception. Stateless and
 * thread-safe.
 */
final class KeyParser {

  /** The longest key accepted, in characters after unquoting. */
  static final int MAX_LENGTH = 255;

  /** What parsing a header value gave. */
  sealed interface Result {}

  /** A valid key, unquoted. */
  record Valid(String key) implements Result {}

  /** Not a valid key; {@code reason} is fit for a problem detail. */
  record Invalid(String reason) implements Result {}

  private KeyParser() {}

  static Result parse(String headerValue) {
    if (headerValue == null) {
      return new Invalid("the key is missing");
    }
    int start = 0;
    int end = headerValue.length();
    while (start < end && isWhitespace(headerValue.charAt(start))) {
      start++;
    }
    while (end > start && isWhitespace(headerValue.charAt(end - 1))) {
      end--;
    }
    if (start == end) {
      return new Invalid("the key is empty");
    }
    return headerValue.charAt(start) == '"'
        ? parseString(headerValue, start, end)
        : parseToken(headerValue, start, end);
  }

  private static Result parseToken(String value, int start, int end) {
    for (int i = start; i < end; i++) {
      char c = value.charAt(i);
      if (c == ',') {
        return new Invalid("the key must be one value, not a list");
      }
      if (c == '"') {
        return new Invalid("a quote inside an unquoted key at position " + (i - start));
      }
      if (c < 0x21 || c > 0x7E) {
        return new Invalid(
            "an unquoted key may hold only visible ASCII characters; found "
                + describe(c) + " at position " + (i - start));
      }
    }
    return checkLength(value.substring(start, end));
  }

  private static Result parseString(String value, int start, int end) {
    StringBuilder key = new StringBuilder(end - start);
    int i = start + 1;
    while (i < end) {
      char c = value.charAt(i);
      if (c == '\\') {
        if (i + 1 >= end) {
          return new Invalid("the quoted key ends inside an escape");
        }
        char escaped = value.charAt(i + 1);
        if (escaped != '"' && escaped != '\\') {
          return new Invalid("only \\\" and \\\\ may be escaped in a quoted key; found \\"
              + describe(escaped));
        }
        key.append(escaped);
        i += 2;
      } else if (c == '"') {
        if (i + 1 != end) {
          char next = value.charAt(i + 1);
          return new Invalid(
              next == ',' || isWhitespace(next)
                  ? "the key must be one value, not a list"
                  : next == ';'
                      ? "the key must not carry parameters"
                      : "characters after the closing quote of the key");
        }
        return checkLength(key.toString());
      } else if (c < 0x20 || c > 0x7E) {
        return new Invalid(
            "a quoted key may hold only printable ASCII characters; found " + describe(c));
      } else {
        key.append(c);
        i++;
      }
    }
    return new Invalid("the quoted key has no closing quote");
  }

  private static Result checkLength(String key) {
    if (key.isEmpty()) {
      return new Invalid("the key is empty");
    }
    if (key.length() > MAX_LENGTH) {
      return new Invalid(
          "the key is " + key.length() + " characters long; at most " + MAX_LENGTH + " allowed");
    }
    return new Valid(key);
  }

  private static boolean isWhitespace(char c) {
    return c == ' ' || c == '\t';
  }

  private static String describe(char c) {
    return String.format("U+%04X", (int) c);
  }
}
