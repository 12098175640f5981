package io.idemkey.store;

/** The base of every exception idemkey throws. */
public class IdempotencyException extends RuntimeException {

  public IdempotencyException(String message) {
    super(message);
  }

  public IdempotencyException(String message, Throwable cause) {
    super(message, cause);
  }
}
