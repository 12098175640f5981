package io.idemkey.filter;

/**
 * A step's call to another service (SPEC §12): the execution layer's {@link
 * io.idemkey.execution.StepCall}, under the name handlers have used.
 *
 * @param <T> the result
 * @param <E> what the call may throw
 */
@FunctionalInterface
public interface StepCall<T, E extends Exception> extends io.idemkey.execution.StepCall<T, E> {}
