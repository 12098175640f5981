package io.idemkey.filter;

import io.idemkey.execution.Codec;
import io.idemkey.execution.LeaseLostException;
import jakarta.servlet.ServletRequest;

/**
 * The steps of the request that holds an idempotency key (SPEC §12): the execution layer's
 * {@link io.idemkey.execution.Steps}, found on the servlet request. Named calls to other services
 * whose results are stored as soon as they return, so that a later run of the same request (its
 * lease taken over after a crash, or an earlier run released by a 5xx or an exception) gets each
 * stored result back without calling again, and resumes after its last completed step.
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
 * a request whose lease was taken over gets {@link LeaseLostException} instead; left to propagate
 * out of the handler, the filter answers the client as a retry would be answered now.
 *
 * <p>Thread-safe; step names are unique within one request.
 */
public interface Steps extends io.idemkey.execution.Steps {

  /** The request attribute that holds a covered request's steps. */
  String ATTRIBUTE = Steps.class.getName();

  /**
   * The steps of {@code request}. A request that holds no key (not covered, sent without a key,
   * or run without deduplication while the store is away with {@code on-store-failure=fail-open})
   * gets steps that call every time, each with a new random derived key.
   */
  static Steps of(ServletRequest request) {
    return request.getAttribute(ATTRIBUTE) instanceof Steps steps
        ? steps
        : of(io.idemkey.execution.Steps.direct());
  }

  /** {@code steps} as the filter's steps. */
  static Steps of(io.idemkey.execution.Steps steps) {
    return new Steps() {
      @Override
      public <T, E extends Exception> T run(String name, StepCodec<T> codec, StepCall<T, E> call)
          throws E {
        return steps.run(name, codec, call);
      }

      @Override
      public String derivedKey(String name) {
        return steps.derivedKey(name);
      }
    };
  }

  /**
   * Runs step {@code name}: returns its stored result if an earlier run of this request stored
   * one; otherwise calls {@code call} with the step's derived key, stores what it returns, and
   * returns it. As {@link io.idemkey.execution.Steps#run}, with the filter's types (what an
   * implementation of this interface, a test double say, implements).
   *
   * @throws E what {@code call} throws; nothing is stored then, and a retry calls again
   * @throws IllegalArgumentException if {@code name} is empty, longer than 200 characters, or was
   *     run before in this request
   * @throws LeaseLostException if the request no longer holds its key (the call did happen)
   */
  <T, E extends Exception> T run(String name, StepCodec<T> codec, StepCall<T, E> call) throws E;

  /** The execution layer's {@code run}, through {@link #run(String, StepCodec, StepCall)}. */
  @Override
  default <T, E extends Exception> T run(
      String name, Codec<T> codec, io.idemkey.execution.StepCall<T, E> call) throws E {
    StepCodec<T> stepCodec = codec instanceof StepCodec<T> own ? own : StepCodec.of(codec);
    StepCall<T, E> stepCall = call instanceof StepCall<T, E> own ? own : call::call;
    return run(name, stepCodec, stepCall);
  }
}
