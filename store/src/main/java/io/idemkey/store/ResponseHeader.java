package io.idemkey.store;

import java.util.Objects;

/**
 * One stored response header field. A header with several values is stored as several fields, in
 * the order they were set.
 *
 * @param name the field name, as the handler wrote it
 * @param value the field value
 */
public record ResponseHeader(String name, String value) {

  /**
   * Validates the field.
   *
   * @throws NullPointerException if either part is null
   * @throws IllegalArgumentException if the name is empty
   */
  public ResponseHeader {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(value, "value");
    if (name.isEmpty()) {
      throw new IllegalArgumentException("header name must not be empty");
    }
  }
}
