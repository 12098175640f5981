package io.idemkey.store;

import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Marks the keys that requests wait for, so that their completion or release tells the nodes
 * (SPEC §5): a settled key notifies only when its row was marked, which spares every key that no
 * duplicate waited for a transaction of its own.
 *
 * <p>Why no wake-up is lost: a key is marked only after its watcher was registered with the
 * listener ({@link SettledKeys}, which calls every watcher once when it starts listening). The
 * mark and the settling each change the key's row, so PostgreSQL orders them by its row lock:
 * a mark before the settling makes the settling notify (it returns the mark), and a mark after it
 * finds the key no longer in progress and calls the watcher itself. A row locked when the mark
 * comes (settling now, or held {@code FOR SHARE} by its request's transaction) is not waited for:
 * the mark is tried again later, with a growing pause, as is a mark that failed, until it lands,
 * the key settles or the watch ends.
 *
 * <p>Thread-safe. Marks run one at a time on one daemon thread, on the node's connections (the
 * caller's statement); the thread exists only once something was marked, until {@link #close()}.
 */
final class WaitMarks implements AutoCloseable {

  private static final System.Logger LOG = System.getLogger(WaitMarks.class.getName());
  private static final long FIRST_PAUSE_MILLIS = 10;
  private static final long LONGEST_PAUSE_MILLIS = 1_000;

  /** What a mark found. */
  enum Mark {
    /** The in-progress row is marked: its settling will notify. */
    MARKED,
    /** The row is in progress but locked: try again. */
    LOCKED,
    /** No in-progress row: the key settled (or was never held). */
    NOT_HELD
  }

  /** Marks one key's in-progress row; may throw when the store is away. */
  interface Marker {
    Mark mark(IdempotencyKey key);
  }

  private final Marker marker;
  /** Marks that found their row locked or failed, and were tried again: for tests. */
  private final AtomicLong retried = new AtomicLong();
  private ScheduledThreadPoolExecutor thread;
  private boolean closed;

  WaitMarks(Marker marker) {
    this.marker = marker;
  }

  /**
   * Marks {@code key} soon, and calls {@code onSettled} if it found the key settled already; the
   * returned registration stops further tries. Returns at once.
   */
  IdempotencyStore.Registration mark(IdempotencyKey key, Runnable onSettled) {
    AtomicBoolean ended = new AtomicBoolean();
    schedule(() -> attempt(key, onSettled, ended, FIRST_PAUSE_MILLIS), 0);
    return () -> ended.set(true);
  }

  private void attempt(IdempotencyKey key, Runnable onSettled, AtomicBoolean ended, long pause) {
    if (ended.get()) {
      return;
    }
    Mark mark;
    try {
      mark = marker.mark(key);
    } catch (RuntimeException e) {
      LOG.log(System.Logger.Level.DEBUG, "marking a waited key failed; trying again", e);
      mark = Mark.LOCKED;
    }
    switch (mark) {
      case MARKED -> { }
      case NOT_HELD -> onSettled.run();
      case LOCKED -> {
        retried.incrementAndGet();
        schedule(() -> attempt(key, onSettled, ended, Math.min(LONGEST_PAUSE_MILLIS, pause * 2)),
            pause);
      }
    }
  }

  long retried() {
    return retried.get();
  }

  private synchronized void schedule(Runnable task, long delayMillis) {
    if (closed) {
      return;
    }
    if (thread == null) {
      thread = new ScheduledThreadPoolExecutor(1, runnable -> {
        Thread t = new Thread(runnable, "idemkey-wait-marks");
        t.setDaemon(true);
        return t;
      });
      thread.setRemoveOnCancelPolicy(true);
    }
    thread.schedule(task, delayMillis, TimeUnit.MILLISECONDS);
  }

  @Override
  public synchronized void close() {
    closed = true;
    if (thread != null) {
      thread.shutdownNow();
    }
  }
}
