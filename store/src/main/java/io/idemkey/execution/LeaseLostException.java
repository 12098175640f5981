package io.idemkey.execution;

import io.idemkey.store.IdempotencyException;

/**
 * A run no longer holds its key: its lease ran out and another run took the key over (or the key
 * was settled), so what it tried to store (a step's result, or its own completion) was refused by
 * the fencing token. The call or the work did happen; in transactional mode the run's writes were
 * rolled back. The run should stop, since the new holder runs the same work and its own result
 * counts. Left to propagate out of a servlet handler, the filter answers the client as a retry
 * would be answered now (409 {@code in-progress}, or the new holder's replay).
 */
public final class LeaseLostException extends IdempotencyException {

  public LeaseLostException(String message) {
    super(message);
  }

  /** Whether {@code thrown} is one, or was caused by one (a framework may wrap it). */
  public static boolean isCauseOf(Throwable thrown) {
    for (Throwable t = thrown; t != null; t = t.getCause() == t ? null : t.getCause()) {
      if (t instanceof LeaseLostException) {
        return true;
      }
    }
    return false;
  }
}
