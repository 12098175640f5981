package io.idemkey.store;

/**
 * The request's transaction could not commit because a statement of the request's own failed in
 * it and the request went on (PostgreSQL then refuses every statement until the transaction ends:
 * SQLSTATE 25P02). Nothing was committed. It is the request's failure, not the store's: the store
 * is reachable, and the same request fails the same way on a retry unless it rolls back to a
 * savepoint after catching the error.
 */
public final class TransactionAbortedException extends IdempotencyException {

  public TransactionAbortedException(String message, Throwable cause) {
    super(message, cause);
  }
}
