package io.idemkey.store;

import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Runs {@link IdempotencyStore#purgeExpired()} every interval on one daemon thread, and closes
 * the store it decorates. Every node may run one: the store lets only one purge at a time.
 *
 * <p>Thread-safe.
 */
final class PurgeSchedule extends DelegatingStore {

  private static final System.Logger LOG = System.getLogger(PurgeSchedule.class.getName());

  private final ScheduledExecutorService executor;

  PurgeSchedule(IdempotencyStore delegate, Duration interval) {
    super(delegate);
    this.executor =
        Executors.newSingleThreadScheduledExecutor(
            runnable -> {
              Thread thread = new Thread(runnable, "idemkey-purge");
              thread.setDaemon(true);
              return thread;
            });
    long millis = interval.toMillis();
    executor.scheduleWithFixedDelay(this::purgeQuietly, millis, millis, TimeUnit.MILLISECONDS);
  }

  private void purgeQuietly() {
    try {
      int deleted = delegate.purgeExpired();
      if (deleted > 0) {
        LOG.log(System.Logger.Level.DEBUG, "purged {0} expired idempotency keys", deleted);
      }
    } catch (RuntimeException e) {
      // Never let the schedule die: the next run tries again.
      LOG.log(System.Logger.Level.WARNING, "purge of expired idempotency keys failed", e);
    }
  }

  @Override
  public void close() {
    executor.shutdownNow();
    super.close();
  }
}
