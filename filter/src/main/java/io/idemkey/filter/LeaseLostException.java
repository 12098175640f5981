package io.idemkey.filter;

import io.idemkey.store.IdempotencyException;

/**
 * A step's result could not be stored because the request no longer holds its key: its lease ran
 * out and another request took the key over (or the key was settled). The call did happen; the
 * request should stop, since the new holder runs the same steps and its own result counts. Left
 * to propagate out of the handler, the filter answers the client as a retry would be answered now
 * (409 {@code in-progress}, or the new holder's replay).
 */
public final class LeaseLostException extends IdempotencyException {

  public LeaseLostException(String message) {
    super(message);
  }

  /** Whether {@code thrown} is one, or was caused by one (a framework may wrap it). */
  static boolean isCauseOf(Throwable thrown) {
    for (Throwable t = thrown; t != null; t = t.getCause() == t ? null : t.getCause()) {
      if (t instanceof LeaseLostException) {
        return true;
      }
    }
    return false;
  }
}
