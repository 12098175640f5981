package io.idemkey.execution;

import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.StoreBuilder;
import java.time.Duration;
import java.util.Objects;

/**
 * The builder of an {@link IdempotentExecutor}. Each setter validates its value.
 *
 * <p>Not thread-safe; the executor it builds is.
 */
public final class ExecutorBuilder {

  /** Default longest wait of a call whose key another run holds. */
  public static final Duration DEFAULT_WAIT_TIMEOUT = Duration.ofSeconds(10);

  private final IdempotencyStore store;
  private Duration lease = StoreBuilder.DEFAULT_LEASE;
  private boolean transactional;
  private OnInFlight onInFlight = OnInFlight.WAIT;
  private Duration waitTimeout = DEFAULT_WAIT_TIMEOUT;
  private StepListener stepListener = StepListener.NONE;

  ExecutorBuilder(IdempotencyStore store) {
    this.store = Objects.requireNonNull(store, "store");
  }

  /**
   * The store's lease ({@link StoreBuilder#lease}, default 30 s): renewed every third of it while
   * work runs. It must be the lease the store was built with.
   *
   * @throws IllegalArgumentException if not positive
   */
  public ExecutorBuilder lease(Duration lease) {
    Objects.requireNonNull(lease, "lease");
    if (lease.isNegative() || lease.isZero()) {
      throw new IllegalArgumentException("lease must be positive, was " + lease);
    }
    this.lease = lease;
    return this;
  }

  /**
   * Whether work runs in a transaction of the store's database whose commit also completes the
   * key (SPEC §6); default false. Needs a PostgreSQL store.
   */
  public ExecutorBuilder transactional(boolean transactional) {
    this.transactional = transactional;
    return this;
  }

  /** What a call whose key another run holds does; default {@link OnInFlight#WAIT}. */
  public ExecutorBuilder onInFlight(OnInFlight onInFlight) {
    this.onInFlight = Objects.requireNonNull(onInFlight, "onInFlight");
    return this;
  }

  /**
   * The longest wait of a call whose key another run holds, with {@link OnInFlight#WAIT};
   * default 10 s.
   *
   * @throws IllegalArgumentException if negative
   */
  public ExecutorBuilder waitTimeout(Duration waitTimeout) {
    Objects.requireNonNull(waitTimeout, "waitTimeout");
    if (waitTimeout.isNegative()) {
      throw new IllegalArgumentException("waitTimeout must not be negative, was " + waitTimeout);
    }
    this.waitTimeout = waitTimeout;
    return this;
  }

  /** Told of each step of {@link IdempotentExecutor#execute}'s runs; default none. */
  public ExecutorBuilder stepListener(StepListener stepListener) {
    this.stepListener = Objects.requireNonNull(stepListener, "stepListener");
    return this;
  }

  /** The executor. It starts a lease scheduler thread; close it when done. */
  public IdempotentExecutor build() {
    return new StoreExecutor(store, lease, transactional, onInFlight, waitTimeout, stepListener);
  }
}
