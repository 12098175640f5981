package io.idemkey.execution;

/**
 * The work run once per key ({@link IdempotentExecutor#execute}).
 *
 * @param <T> its result, stored through a {@link Codec} and given to every later call
 * @param <E> what it may throw
 */
@FunctionalInterface
public interface Work<T, E extends Exception> {

  /**
   * Does the work, holding the key.
   *
   * @return the result, never null
   * @throws E when it fails: nothing is stored (in transactional mode its writes roll back), the
   *     key is released, and the next call runs the work again
   */
  T run(Attempt attempt) throws E;
}
