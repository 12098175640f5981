package io.idemkey.execution;

/**
 * The work of each of several keys taken in order in one transaction ({@link
 * IdempotentExecutor#executeInOrder(java.util.List, InOrderWork)}).
 *
 * @param <E> what it may throw
 */
@FunctionalInterface
public interface InOrderWork<E extends Exception> {

  /**
   * Does the work of the key at {@code index} of the list given, holding it.
   *
   * @throws E when it fails: every key's writes of the transaction roll back
   */
  void run(int index, Attempt attempt) throws E;
}
