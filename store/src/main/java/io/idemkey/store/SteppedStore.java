package io.idemkey.store;

/**
 * A store with its {@link StepStore}: every key operation forwarded, {@link #steps()} answered,
 * and the purge of expired keys followed by the purge of expired step results. Closing it closes
 * the store it decorates.
 *
 * <p>Thread-safe.
 */
final class SteppedStore implements IdempotencyStore {

  private final IdempotencyStore delegate;
  private final StepStore steps;

  SteppedStore(IdempotencyStore delegate, StepStore steps) {
    this.delegate = delegate;
    this.steps = steps;
  }

  @Override
  public StepStore steps() {
    return steps;
  }

  @Override
  public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
    return delegate.claim(key, fingerprint);
  }

  @Override
  public boolean complete(IdempotencyKey key, long token, StoredResponse response) {
    return delegate.complete(key, token, response);
  }

  @Override
  public boolean release(IdempotencyKey key, long token) {
    return delegate.release(key, token);
  }

  @Override
  public boolean renew(IdempotencyKey key, long token) {
    return delegate.renew(key, token);
  }

  @Override
  public StoreTransaction beginTransaction(IdempotencyKey key, long token) {
    return delegate.beginTransaction(key, token);
  }

  @Override
  public Registration watch(IdempotencyKey key, Runnable onSettled) {
    return delegate.watch(key, onSettled);
  }

  /** Purges expired keys, then expired step results; returns the number of keys deleted. */
  @Override
  public int purgeExpired() {
    int keys = delegate.purgeExpired();
    steps.purgeExpired();
    return keys;
  }

  @Override
  public void close() {
    delegate.close();
  }
}
