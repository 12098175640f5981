package io.idemkey.execution;

import io.idemkey.store.Fingerprint;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.StepStore;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The {@link Steps} of one run that holds its key, or of a run that holds none (then every call
 * is made, with a random derived key, and nothing is stored).
 *
 * <p>Thread-safe: the names run so far are a concurrent set, and the store is thread-safe.
 */
final class KeySteps implements Steps {

  private static final System.Logger LOG = System.getLogger(KeySteps.class.getName());

  /** The longest step name, in characters. */
  static final int MAX_NAME_LENGTH = 200;

  private final StepStore store;
  private final IdempotencyKey key;
  private final Fingerprint fingerprint;
  private final long token;
  private final StepListener listener;
  private final Set<String> names = ConcurrentHashMap.newKeySet();

  private KeySteps(
      StepStore store, IdempotencyKey key, Fingerprint fingerprint, long token,
      StepListener listener) {
    this.store = store;
    this.key = key;
    this.fingerprint = fingerprint;
    this.token = token;
    this.listener = listener;
  }

  /**
   * The steps of a run that holds {@code key} with {@code token}, kept in
   * {@code store}; with none (a store that keeps no step results), steps call every time.
   */
  static KeySteps holding(
      StepStore store,
      IdempotencyKey key,
      Fingerprint fingerprint,
      long token,
      StepListener listener) {
    return new KeySteps(store, key, fingerprint, token, listener);
  }

  /** Steps of a run that holds no key: each call is made, nothing is stored. */
  static Steps direct() {
    return new KeySteps(null, null, null, 0, StepListener.NONE);
  }

  @Override
  public <T, E extends Exception> T run(String name, Codec<T> codec, StepCall<T, E> call)
      throws E {
    Objects.requireNonNull(codec, "codec");
    Objects.requireNonNull(call, "call");
    checkName(name);
    if (!names.add(name)) {
      throw new IllegalArgumentException(
          "step '" + name + "' already ran in this run: step names are unique per run");
    }
    long started = System.nanoTime();
    if (store == null) {
      return Objects.requireNonNull(call.call(derivedKey(name)), "a step's result");
    }
    Optional<byte[]> stored = store.find(key, fingerprint, name);
    if (stored.isPresent()) {
      T result = codec.decode(stored.get());
      listener.stepEnded(true, started);
      return result;
    }
    T result = Objects.requireNonNull(call.call(derivedKey(name)), "a step's result");
    if (!store.save(key, token, fingerprint, name, codec.encode(result))) {
      LOG.log(System.Logger.Level.WARNING,
          "the result of a step was not stored: its run''s lease was taken over (token {0})",
          token);
      throw new LeaseLostException(
          "the result of step '" + name + "' was not stored: the run no longer holds its key"
              + " (token " + token + " was taken over); the call was made, and the new holder"
              + " runs the step itself");
    }
    listener.stepEnded(false, started);
    return result;
  }

  @Override
  public String derivedKey(String name) {
    checkName(name);
    if (key == null) {
      return UUID.randomUUID().toString();
    }
    // Each part length-prefixed, so that no two different tuples hash the same bytes.
    byte[] digest = Fingerprint.of(
        "idemkey-step".getBytes(StandardCharsets.UTF_8),
        key.scope().getBytes(StandardCharsets.UTF_8),
        key.key().getBytes(StandardCharsets.UTF_8),
        fingerprint.sha256(),
        name.getBytes(StandardCharsets.UTF_8)).sha256();
    return Base64.getUrlEncoder().withoutPadding().encodeToString(digest);
  }

  private static void checkName(String name) {
    Objects.requireNonNull(name, "name");
    if (name.isEmpty() || name.length() > MAX_NAME_LENGTH) {
      throw new IllegalArgumentException(
          "a step name must be 1 to " + MAX_NAME_LENGTH + " characters, was " + name.length());
    }
  }
}
