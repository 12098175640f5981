package io.idemkey.execution;

import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.StoreTransaction;
import java.sql.Connection;
import java.util.Optional;

/**
 * The run of a key taken in order ({@link IdempotentExecutor#executeInOrder}): its transaction,
 * and steps that store nothing. It holds no row, so it has no token (0) and no lease to lose.
 *
 * <p>Confined to the thread that runs the work, as its transaction is.
 */
final class InOrderAttempt implements Attempt {

  private final IdempotencyKey key;
  private final StoreTransaction transaction;
  private final Steps steps;

  InOrderAttempt(IdempotencyKey key, StoreTransaction transaction, Steps steps) {
    this.key = key;
    this.transaction = transaction;
    this.steps = steps;
  }

  @Override
  public IdempotencyKey key() {
    return key;
  }

  @Override
  public long token() {
    return 0;
  }

  @Override
  public Steps steps() {
    return steps;
  }

  @Override
  public Optional<Connection> connection() {
    return Optional.of(transaction.connection());
  }

  @Override
  public boolean leaseLost() {
    return false;
  }
}
