package io.idemkey.execution;

/**
 * A step's call to another service (SPEC §12).
 *
 * @param <T> the result
 * @param <E> what the call may throw
 */
@FunctionalInterface
public interface StepCall<T, E extends Exception> {

  /**
   * Makes the call.
   *
   * @param derivedKey the step's derived key: pass it to the other service as its idempotency key
   * @return the result, never null
   * @throws E when the call fails; nothing is stored, and a retry calls again
   */
  T call(String derivedKey) throws E;
}
