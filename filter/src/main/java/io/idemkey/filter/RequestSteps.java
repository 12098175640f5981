package io.idemkey.filter;

import io.idemkey.store.Fingerprint;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.StepStore;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Base64;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The {@link Steps} of one request that holds its key, or of a request that holds none (then
 * every call is made, with a random derived key, and nothing is stored).
 *
 * <p>Thread-safe: the names run so far are a concurrent set, and the store is thread-safe.
 */
final class RequestSteps implements Steps {

  private static final System.Logger LOG = System.getLogger(RequestSteps.class.getName());

  /** The longest step name, in characters. */
  static final int MAX_NAME_LENGTH = 200;

  /** Receives a step's outcome, with {@link System#nanoTime()} at its start. */
  interface Reporter {
    void report(IdempotencyListener.Outcome outcome, long startedNanos);
  }

  private final StepStore store;
  private final IdempotencyKey key;
  private final Fingerprint fingerprint;
  private final long token;
  private final Reporter reporter;
  private final Set<String> names = ConcurrentHashMap.newKeySet();

  private RequestSteps(
      StepStore store, IdempotencyKey key, Fingerprint fingerprint, long token,
      Reporter reporter) {
    this.store = store;
    this.key = key;
    this.fingerprint = fingerprint;
    this.token = token;
    this.reporter = reporter;
  }

  /**
   * The steps of a request that holds {@code key} with {@code token} ({@link Steps#of}), kept in
   * {@code store}; with none (a store that keeps no step results), steps call every time.
   */
  static RequestSteps holding(
      StepStore store,
      IdempotencyKey key,
      Fingerprint fingerprint,
      long token,
      Reporter reporter) {
    return new RequestSteps(store, key, fingerprint, token, reporter);
  }

  /** Steps of a request that holds no key: each call is made, nothing is stored. */
  static Steps direct() {
    return new RequestSteps(null, null, null, 0, (outcome, started) -> {});
  }

  @Override
  public <T, E extends Exception> T run(String name, StepCodec<T> codec, StepCall<T, E> call)
      throws E {
    Objects.requireNonNull(codec, "codec");
    Objects.requireNonNull(call, "call");
    checkName(name);
    if (!names.add(name)) {
      throw new IllegalArgumentException(
          "step '" + name + "' already ran in this request: step names are unique per request");
    }
    long started = System.nanoTime();
    if (store == null) {
      return Objects.requireNonNull(call.call(derivedKey(name)), "a step's result");
    }
    Optional<byte[]> stored = store.find(key, fingerprint, name);
    if (stored.isPresent()) {
      T result = codec.decode(stored.get());
      reporter.report(IdempotencyListener.Outcome.STEP_REPLAYED, started);
      return result;
    }
    T result = Objects.requireNonNull(call.call(derivedKey(name)), "a step's result");
    if (!store.save(key, token, fingerprint, name, codec.encode(result))) {
      LOG.log(System.Logger.Level.WARNING,
          "the result of a step was not stored: its request's lease was taken over (token {0})",
          token);
      throw new LeaseLostException(
          "the result of step '" + name + "' was not stored: the request no longer holds its key"
              + " (token " + token + " was taken over); the call was made, and the new holder"
              + " runs the step itself");
    }
    reporter.report(IdempotencyListener.Outcome.STEP_EXECUTED, started);
    return result;
  }

  @Override
  public String derivedKey(String name) {
    checkName(name);
    if (key == null) {
      return UUID.randomUUID().toString();
    }
    MessageDigest digest;
    try {
      digest = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is required of every Java runtime", e);
    }
    // Each part length-prefixed, so that no two different tuples hash the same bytes.
    for (byte[] part : new byte[][] {
        "idemkey-step".getBytes(StandardCharsets.UTF_8),
        key.scope().getBytes(StandardCharsets.UTF_8),
        key.key().getBytes(StandardCharsets.UTF_8),
        fingerprint.sha256(),
        name.getBytes(StandardCharsets.UTF_8)}) {
      digest.update(ByteBuffer.allocate(4).putInt(part.length).array());
      digest.update(part);
    }
    return Base64.getUrlEncoder().withoutPadding().encodeToString(digest.digest());
  }

  private static void checkName(String name) {
    Objects.requireNonNull(name, "name");
    if (name.isEmpty() || name.length() > MAX_NAME_LENGTH) {
      throw new IllegalArgumentException(
          "a step name must be 1 to " + MAX_NAME_LENGTH + " characters, was " + name.length());
    }
  }
}
