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
   */
  public IdempotencyKey {
    Objects.requireNonNull(scope, "scope");
    Objects.requireNonNull(key, "key");
    if (key.isEmpty() || key.length() > MAX_LENGTH) {
      throw new IllegalArgumentException(
          "key must be 1 to " + MAX_LENGTH + " characters, was " + key.length());
    }
  }
}
