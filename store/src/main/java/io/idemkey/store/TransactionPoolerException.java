package io.idemkey.store;

/**
 * The store's connections go through a transaction pooler (PgBouncer with {@code
 * pool_mode=transaction}) without what the store needs there: the store was not started, and
 * the message names the setting to add.
 */
public final class TransactionPoolerException extends IdempotencyException {

  TransactionPoolerException(String message) {
    super(message);
  }
}
