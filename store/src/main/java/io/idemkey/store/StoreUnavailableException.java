package io.idemkey.store;

/** The store could not be reached or did not answer in time. */
public final class StoreUnavailableException extends IdempotencyException {

  public StoreUnavailableException(String message, Throwable cause) {
    super(message, cause);
  }

  public StoreUnavailableException(String message) {
    super(message, null);
  }
}
