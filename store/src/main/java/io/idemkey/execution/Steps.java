package io.idemkey.execution;

import io.idemkey.store.StoreUnavailableException;

/**
 * The steps of a run that holds an idempotency key (SPEC §12): named calls to other services
 * whose results are stored as soon as they return, so that a later run of the same key (its lease
 * taken over after a crash, or an earlier run released by a failure) gets each stored result back
 * without calling again, and resumes after its last completed step. An HTTP request's steps
 * ({@code io.idemkey.filter.Steps}) and a message's ({@link Attempt#steps()}) are these.
 *
 * <p>Each step has a derived key, the same in every run of the same key: pass it to the other
 * service as its own idempotency key. It covers the one window a stored result cannot: the call
 * returned, and the node died before the result was stored.
 *
 * <p>A result is stored in its own commit (in transactional mode too: a rolled-back run keeps its
 * step results, because the calls happened), and only while the run still holds its key: a run
 * whose lease was taken over gets {@link LeaseLostException} instead.
 *
 * <p>Thread-safe; step names are unique within one run.
 */
public interface Steps {

  /**
   * Steps of a run that holds no key: each call is made, with a new random derived key, and
   * nothing is stored.
   */
  static Steps direct() {
    return KeySteps.direct();
  }

  /**
   * Runs step {@code name}: returns its stored result if an earlier run of this key stored one;
   * otherwise calls {@code call} with the step's derived key, stores what it returns, and returns
   * it.
   *
   * @throws E what {@code call} throws; nothing is stored then, and a retry calls again
   * @throws IllegalArgumentException if {@code name} is empty, longer than 200 characters, or was
   *     run before in this run
   * @throws NullPointerException if {@code call} returns null
   * @throws LeaseLostException if the run no longer holds its key, so the result could not be
   *     stored (the call did happen)
   * @throws StoreUnavailableException if the store cannot be reached, before the call (nothing
   *     was called) or after it (the result may not be stored: a retry calls again, with the
   *     same derived key)
   */
  <T, E extends Exception> T run(String name, Codec<T> codec, StepCall<T, E> call) throws E;

  /**
   * Runs step {@code name} whose result is text (stored as UTF-8), as {@link #run}.
   *
   * @throws E what {@code call} throws
   */
  default <E extends Exception> String runText(String name, StepCall<String, E> call) throws E {
    return run(name, Codec.text(), call);
  }

  /**
   * The derived key of step {@code name}: the same in every run of this key (a digest of its
   * scope, key, fingerprint and the step's name), and different for every other key and step.
   * 43 characters, safe as an {@code Idempotency-Key} header value.
   */
  String derivedKey(String name);
}
