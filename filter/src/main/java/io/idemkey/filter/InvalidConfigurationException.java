package io.idemkey.filter;

import io.idemkey.store.IdempotencyException;

/** A configuration value is missing or wrong; the message names the property. */
public final class InvalidConfigurationException extends IdempotencyException {

  public InvalidConfigurationException(String message) {
    super(message);
  }

  public InvalidConfigurationException(String message, Throwable cause) {
    super(message, cause);
  }
}
