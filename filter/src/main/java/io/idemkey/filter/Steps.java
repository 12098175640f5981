package io.idemkey.filter;

import io.idemkey.store.StoreUnavailableException;
import jakarta.servlet.ServletRequest;

/**
 * The steps of the request that holds an idempotency key (SPEC §12): named calls to other
 * services whose results are stored as soon as they return, so that a later run of the same
 * request (its lease taken over after a crash, or an earlier run released by a 5xx or an
 * exception) gets each stored result back without calling again, and resumes after its last
 * completed step.
 *
 * <pre>{@code
 * Steps steps = Steps.of(request);
 * String chargeId = steps.runText("charge",
 *     stepKey -> processor.charge(amount, currency, stepKey)); // stepKey: its Idempotency-Key
 * }</pre>
 *
 * <p>Each step has a derived key, the same in every run of the same request: pass it to the
 * other service as its own idempotency key. It covers the one window a stored result cannot: the
 * call returned, and the node died before the result was stored; the retry calls again with the
 * same derived key, and a service that deduplicates answers with the first result.
 *
 * <p>A result is stored in its own commit (in transactional mode too: a rolled-back request keeps
 * its step results, because the calls happened), and only while the request still holds its key:
 * a request whose lease was taken over gets {@link LeaseLostException} instead.
 *
 * <p>Thread-safe; step names are unique within one request.
 */
public interface Steps {

  /** The request attribute that holds a covered request's steps. */
  String ATTRIBUTE = Steps.class.getName();

  /**
   * The steps of {@code request}. A request that holds no key (not covered, sent without a key,
   * or run without deduplication while the store is away with {@code on-store-failure=fail-open})
   * gets steps that call every time, each with a new random derived key.
   */
  static Steps of(ServletRequest request) {
    return request.getAttribute(ATTRIBUTE) instanceof Steps steps ? steps : RequestSteps.direct();
  }

  /**
   * Runs step {@code name}: returns its stored result if an earlier run of this request stored
   * one; otherwise calls {@code call} with the step's derived key, stores what it returns, and
   * returns it.
   *
   * @throws E what {@code call} throws; nothing is stored then, and a retry calls again
   * @throws IllegalArgumentException if {@code name} is empty, longer than 200 characters, or was
   *     run before in this request
   * @throws NullPointerException if {@code call} returns null
   * @throws LeaseLostException if the request no longer holds its key, so the result could not be
   *     stored (the call did happen); left to propagate, the client gets what a retry would get
   *     now
   * @throws StoreUnavailableException if the store cannot be reached, before the call (nothing
   *     was called) or after it (the result may not be stored: a retry calls again, with the
   *     same derived key)
   */
  <T, E extends Exception> T run(String name, StepCodec<T> codec, StepCall<T, E> call) throws E;

  /**
   * Runs step {@code name} whose result is text (stored as UTF-8), as {@link #run}.
   *
   * @throws E what {@code call} throws
   */
  default <E extends Exception> String runText(String name, StepCall<String, E> call) throws E {
    return run(name, StepCodec.text(), call);
  }

  /**
   * The derived key of step {@code name}: the same in every run of this request (a digest of its
   * scope, key, fingerprint and the step's name), and different for every other request and step.
   * 43 characters, safe as an {@code Idempotency-Key} header value.
   */
  String derivedKey(String name);
}
