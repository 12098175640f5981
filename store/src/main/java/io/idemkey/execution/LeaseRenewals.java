package io.idemkey.execution;

import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Renews the lease of every run that holds a key on this node (an HTTP request's or a
 * message's), every third of a lease (SPEC §5). One scheduler thread only triggers; the database calls run on a pool of workers, so a slow
 * renewal never delays another request's. A renewal that finds its lease lost stops its own
 * schedule and reports it once.
 *
 * <p>Thread-safe.
 */
final class LeaseRenewals implements AutoCloseable {

  private static final System.Logger LOG = System.getLogger(LeaseRenewals.class.getName());

  private final IdempotencyStore store;
  private final long periodMillis;
  private final ScheduledThreadPoolExecutor scheduler;
  private final ExecutorService workers;

  LeaseRenewals(IdempotencyStore store, Duration lease) {
    this.store = store;
    this.periodMillis = Math.max(1, lease.toMillis() / 3);
    this.scheduler = new ScheduledThreadPoolExecutor(1, daemon("idemkey-lease-schedule"));
    // Every request cancels its schedule when done: without this, each cancelled task would stay
    // queued until its first run, a third of a lease later.
    scheduler.setRemoveOnCancelPolicy(true);
    // A thread per renewal in flight, none kept idle for long: renewals are rare and short, and a
    // database that hangs holds each for at most the store's statement timeout.
    this.workers =
        new ThreadPoolExecutor(
            0, Integer.MAX_VALUE, 30, TimeUnit.SECONDS, new SynchronousQueue<>(),
            daemon("idemkey-lease-renewal"));
  }

  /** Daemon threads named {@code name-1}, {@code name-2}, ... */
  static java.util.concurrent.ThreadFactory daemon(String name) {
    AtomicInteger count = new AtomicInteger();
    return runnable -> {
      Thread thread = new Thread(runnable, name + "-" + count.incrementAndGet());
      thread.setDaemon(true);
      return thread;
    };
  }

  /** Starts renewing the lease on {@code key} held with {@code token}. */
  Lease start(IdempotencyKey key, long token, Runnable onLost) {
    Lease lease = new Lease(key, token, onLost);
    lease.schedule =
        scheduler.scheduleAtFixedRate(lease::tick, periodMillis, periodMillis, TimeUnit.MILLISECONDS);
    return lease;
  }

  @Override
  public void close() {
    scheduler.shutdownNow();
    workers.shutdownNow();
  }

  /**
   * The renewal of one request's lease. A renewal that finds the lease gone stops the schedule
   * and calls {@code onLost}, whose execution decides what that means in its state (a request
   * settling its key may have done so itself).
   */
  final class Lease {
    private final IdempotencyKey key;
    private final long token;
    private final Runnable onLost;
    private final AtomicBoolean renewing = new AtomicBoolean();
    private volatile ScheduledFuture<?> schedule;
    private volatile boolean stopped;

    private Lease(IdempotencyKey key, long token, Runnable onLost) {
      this.key = key;
      this.token = token;
      this.onLost = onLost;
    }

    /** Stops renewing; a renewal already running finishes without reporting. */
    void stop() {
      stopped = true;
      schedule.cancel(false);
    }

    private void tick() {
      // One renewal per lease at a time: a slow one is not queued behind by another.
      if (!stopped && renewing.compareAndSet(false, true)) {
        try {
          workers.execute(this::renew);
        } catch (java.util.concurrent.RejectedExecutionException e) {
          renewing.set(false);
        }
      }
    }

    private void renew() {
      try {
        if (!store.renew(key, token) && !stopped) {
          stop();
          onLost.run();
        }
      } catch (RuntimeException e) {
        LOG.log(System.Logger.Level.WARNING, "renewing a lease failed; retrying", e);
      } finally {
        renewing.set(false);
      }
    }
  }
}
