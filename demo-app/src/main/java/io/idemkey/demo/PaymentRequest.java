package io.idemkey.demo;

/**
 * The body of {@code POST /payments}: {@code {"amount": 1250, "currency": "EUR"}}, parsed by a
 * small strict reader of one flat JSON object (no JSON library needed for two fields).
 *
 * @param amount in minor units, positive
 * @param currency three letters, upper case
 */
record PaymentRequest(long amount, String currency) {

  /** What parsing gave: a request, or the reason it is invalid. */
  sealed interface Parsed {}

  record Valid(PaymentRequest request) implements Parsed {}

  record Invalid(String reason) implements Parsed {}

  static Parsed parse(String json) {
    Reader reader = new Reader(json);
    Long amount = null;
    String currency = null;
    try {
      reader.expect('{');
      if (!reader.consume('}')) {
        do {
          String name = reader.string();
          reader.expect(':');
          if (name.equals("amount") && amount == null) {
            amount = reader.integer();
          } else if (name.equals("currency") && currency == null) {
            currency = reader.string();
          } else {
            return new Invalid("unexpected or repeated field '" + name + "'");
          }
        } while (reader.consume(','));
        reader.expect('}');
      }
      reader.end();
    } catch (IllegalArgumentException e) {
      return new Invalid("invalid JSON: " + e.getMessage());
    }
    if (amount == null || currency == null) {
      return new Invalid("both amount and currency are required");
    }
    if (amount <= 0) {
      return new Invalid("amount must be positive, was " + amount);
    }
    if (!currency.matches("[A-Z]{3}")) {
      return new Invalid("currency must be three upper-case letters, was '" + currency + "'");
    }
    return new Valid(new PaymentRequest(amount, currency));
  }

  private static final class Reader {
    private final String text;
    private int at;

    Reader(String text) {
      this.text = text;
    }

    /** Skips JSON whitespace (RFC 8259 §2), not the Unicode spaces Character.isWhitespace takes. */
    private void skipSpace() {
      while (at < text.length()) {
        char c = text.charAt(at);
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
          return;
        }
        at++;
      }
    }

    boolean consume(char c) {
      skipSpace();
      if (at < text.length() && text.charAt(at) == c) {
        at++;
        return true;
      }
      return false;
    }

    void expect(char c) {
      if (!consume(c)) {
        throw new IllegalArgumentException("expected '" + c + "' at " + at);
      }
    }

    String string() {
      expect('"');
      StringBuilder value = new StringBuilder();
      while (at < text.length() && text.charAt(at) != '"') {
        char c = text.charAt(at++);
        if (c == '\\' || c < 0x20) {
          throw new IllegalArgumentException("unsupported character in string at " + (at - 1));
        }
        value.append(c);
      }
      expect('"');
      return value.toString();
    }

    /**
     * A JSON integer (RFC 8259 §6): an optional minus, then ASCII digits without a leading zero.
     * Other scripts' digits are not JSON, though Character.isDigit and Long.parseLong take them.
     */
    long integer() {
      skipSpace();
      int start = at;
      if (at < text.length() && text.charAt(at) == '-') {
        at++;
      }
      int digits = at;
      while (at < text.length() && text.charAt(at) >= '0' && text.charAt(at) <= '9') {
        at++;
      }
      if (at == digits || (text.charAt(digits) == '0' && at - digits > 1)) {
        throw new IllegalArgumentException("expected a whole number at " + start);
      }
      try {
        return Long.parseLong(text.substring(start, at));
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("the number at " + start + " is too large");
      }
    }

    void end() {
      skipSpace();
      if (at != text.length()) {
        throw new IllegalArgumentException("unexpected content at " + at);
      }
    }
  }
}
