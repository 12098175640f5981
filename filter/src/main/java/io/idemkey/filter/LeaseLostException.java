package io.idemkey.filter;

import io.idemkey.store.IdempotencyException;

/**
 * A step's result could not be stored because the request no longer holds its key: its lease ran
 * out and another request took the key over (or the key was settled). The call did happen; the
 * request should stop, since the new holder runs the same steps and its own result counts.
 */
public final class LeaseLostException extends IdempotencyException {

  public LeaseLostException(String message) {
    super(message);
  }
}
