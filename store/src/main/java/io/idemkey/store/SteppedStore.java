package io.idemkey.store;

/**
 * A store with its {@link StepStore}: {@link #steps()} answered, and the purge of expired keys
 * followed by the purge of expired step results; every other call forwarded. Closing it closes
 * the store it decorates.
 *
 * <p>Thread-safe.
 */
final class SteppedStore extends DelegatingStore {

  private final StepStore steps;

  SteppedStore(IdempotencyStore delegate, StepStore steps) {
    super(delegate);
    this.steps = steps;
  }

  @Override
  public StepStore steps() {
    return steps;
  }

  /** Purges expired keys, then expired step results; returns the number of keys deleted. */
  @Override
  public int purgeExpired() {
    int keys = delegate.purgeExpired();
    steps.purgeExpired();
    return keys;
  }
}
