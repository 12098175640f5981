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
