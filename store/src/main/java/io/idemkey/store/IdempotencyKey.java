package io.idemkey.store;

import java.util.Objects;

/**
 * An idempotency key inside its scope: two clients with the same key but different scopes never
 * share a record.
 *
 * @param scope who the key belongs to, as chosen by the caller (may be empty for one global scope)
 * @param key the client's key, 1 to {@value #MAX_LENGTH} characters
 */
public record IdempotencyKey(String scope, String key) {

  /** The longest accepted key, in characters. */
  public static final int MAX_LENGTH = 255;

  /** The most digits of a sequence key: those of {@link Long#MAX_VALUE}. */
  public static final int MAX_SEQUENCE_DIGITS = 19;

  private static final String LARGEST_SEQUENCE_KEY = Long.toString(Long.MAX_VALUE);

  /**
   * Validates the key.
   *
   * @throws NullPointerException if either part is null
   * @throws IllegalArgumentException if the key is empty or longer than {@value #MAX_LENGTH}
   *     characters, or holds U+0000 or a lone surrogate (text a database cannot store as it is)
   */
  public IdempotencyKey {
    Objects.requireNonNull(scope, "scope");
    Objects.requireNonNull(key, "key");
    if (key.isEmpty() || key.length() > MAX_LENGTH) {
      throw new IllegalArgumentException(
          "key must be 1 to " + MAX_LENGTH + " characters, was " + key.length());
    }
    if (!storableText(key)) {
      throw new IllegalArgumentException("key must not hold U+0000 or a lone surrogate");
    }
  }

  /**
   * The number a sequence key stands for (SPEC §13), or -1 when {@code key} is not one: a sequence
   * key is a non-negative decimal integer that fits a signed 64-bit integer (at most 19 digits),
   * written without sign or leading zeros, so that each number has one spelling and one record.
   */
  public static long sequenceNumber(String key) {
    int length = key.length();
    if (length == 0 || length > MAX_SEQUENCE_DIGITS || (key.charAt(0) == '0' && length > 1)) {
      return -1;
    }
    for (int i = 0; i < length; i++) {
      char c = key.charAt(i);
      if (c < '0' || c > '9') {
        return -1;
      }
    }
    if (length == MAX_SEQUENCE_DIGITS && key.compareTo(LARGEST_SEQUENCE_KEY) > 0) {
      return -1;
    }
    return Long.parseLong(key);
  }

  /**
   * This key's sequence number, for a store in sequence mode.
   *
   * @throws IllegalArgumentException if the key is not a sequence key
   */
  public long requireSequenceNumber() {
    long number = sequenceNumber(key);
    if (number < 0) {
      throw new IllegalArgumentException("a sequence key is a non-negative decimal integer of at"
          + " most " + MAX_SEQUENCE_DIGITS + " digits, without sign or leading zeros; this key has "
          + key.length() + " characters and is not one");
    }
    return number;
  }

  /** Whether {@code text} is stored as it is: no U+0000, no lone surrogate. */
  static boolean storableText(String text) {
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (c == 0) {
        return false;
      }
      if (Character.isHighSurrogate(c)
          && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
        i++;
      } else if (Character.isSurrogate(c)) {
        return false;
      }
    }
    return true;
  }
}
