package io.idemkey.filter;

import io.idemkey.store.ClaimResult;
import io.idemkey.store.Fingerprint;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.StoreUnavailableException;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;

/**
 * The duplicates that wait for the first request with their key (on-in-flight=wait, SPEC §5). A
 * waiter holds no thread: it is woken when the store says the key settled (completed or released,
 * on any node), or when the holder's lease would run out, and then one claim per key and
 * fingerprint, not per waiter, finds out what happened. Nothing polls. At most {@code max-waiters} wait at once; each
 * waits at most {@code wait-timeout}.
 *
 * <p>Thread-safe.
 */
final class Waiters implements AutoCloseable {

  private static final System.Logger LOG = System.getLogger(Waiters.class.getName());
  /** After a holder's lease would end, how long before looking: its renewal may be in flight. */
  private static final long LEASE_END_SLACK_MILLIS = 50;

  /** What a group waits for: a key, for a request with this fingerprint. */
  private record Waited(IdempotencyKey key, Fingerprint fingerprint) {}

  /** How a wait ended: a claim that settles it, a failure of the store, or neither (timed out). */
  record Outcome(ClaimResult claim, StoreUnavailableException failure) {
    static final Outcome TIMED_OUT = new Outcome(null, null);
  }

  private final IdempotencyStore store;
  private final Duration waitTimeout;
  private final int maxWaiters;
  private final AtomicInteger waiting = new AtomicInteger();
  /**
   * One group per key and fingerprint: a waiter is answered as a claim with its own request's
   * fingerprint is (after a take-over by another body, the two bodies' waiters differ).
   */
  private final Map<Waited, Group> groups = new ConcurrentHashMap<>();
  private final ScheduledThreadPoolExecutor timer;
  private final ExecutorService workers;

  Waiters(IdempotencyStore store, Duration waitTimeout, int maxWaiters) {
    this.store = store;
    this.waitTimeout = waitTimeout;
    this.maxWaiters = maxWaiters;
    this.timer = new ScheduledThreadPoolExecutor(1, DaemonThreads.named("idemkey-waiters-timer"));
    timer.setRemoveOnCancelPolicy(true);
    this.workers =
        new ThreadPoolExecutor(
            0, Integer.MAX_VALUE, 30, TimeUnit.SECONDS, new SynchronousQueue<>(),
            DaemonThreads.named("idemkey-waiters"));
  }

  /**
   * Takes a place among the waiters, or returns null when {@code max-waiters} already wait. A
   * place taken must be used by {@link Waiter#await}.
   */
  Waiter reserve() {
    if (waiting.incrementAndGet() > maxWaiters) {
      waiting.decrementAndGet();
      return null;
    }
    return new Waiter();
  }

  @Override
  public void close() {
    timer.shutdownNow();
    workers.shutdownNow();
  }

  /** One waiting request. {@code onSettled} is called exactly once, on a thread of the waiters. */
  final class Waiter {
    private final AtomicBoolean settled = new AtomicBoolean();
    private Consumer<Outcome> onSettled;
    // Set on the thread that waits, read on the one that settles it.
    private volatile ScheduledFuture<?> deadline;
    private volatile Group group;

    /** Waits for the key that {@code first} found in progress. */
    void await(
        IdempotencyKey key,
        Fingerprint fingerprint,
        ClaimResult.InProgress first,
        Consumer<Outcome> onSettled) {
      this.onSettled = onSettled;
      // Joining and leaving happen inside the map's atomic update of the key: a group is never
      // closed, nor settled, while a waiter joins it.
      boolean[] created = new boolean[1];
      this.group =
          groups.compute(new Waited(key, fingerprint), (waited, existing) -> {
            created[0] = existing == null;
            Group joined = created[0] ? new Group(waited) : existing;
            joined.waiters.add(this);
            return joined;
          });
      if (!settled.get()) { // else the group settled it already
        this.deadline =
            timer.schedule(() -> settle(Outcome.TIMED_OUT), waitTimeout.toMillis(),
                TimeUnit.MILLISECONDS);
      }
      if (created[0]) {
        // The key may have settled between the claim that found it in progress and the
        // subscription: one look per key, not per waiter, closes that gap.
        group.wake();
      }
      group.lookAt(first.leaseRemaining());
    }

    /** The client went away, or the container ended the request: stop waiting. */
    void cancel() {
      if (settled.compareAndSet(false, true)) {
        leave();
      }
    }

    void settle(Outcome outcome) {
      if (settled.compareAndSet(false, true)) {
        leave();
        try {
          onSettled.accept(outcome);
        } catch (RuntimeException e) {
          LOG.log(System.Logger.Level.WARNING, "answering a waiting request failed", e);
        }
      }
    }

    private void leave() {
      if (deadline != null) {
        deadline.cancel(false);
      }
      waiting.decrementAndGet();
      if (group != null) {
        groups.computeIfPresent(group.waited, (k, existing) -> {
          if (existing != group) {
            return existing; // this waiter's group settled; a new one waits for the key now
          }
          existing.waiters.remove(this);
          if (existing.waiters.isEmpty()) {
            existing.close();
            return null;
          }
          return existing;
        });
      }
    }
  }

  /** The waiters of one key and fingerprint: one subscription, one look at a time. */
  private final class Group {
    private final Waited waited;
    private final IdempotencyKey key;
    private final Fingerprint fingerprint;
    private final List<Waiter> waiters = new CopyOnWriteArrayList<>();
    private final IdempotencyStore.Registration registration;
    /** Wake-ups not yet answered by a look; a look runs while it is above zero. */
    private final AtomicInteger wakes = new AtomicInteger();
    private ScheduledFuture<?> leaseEnd;
    private boolean closed;

    Group(Waited waited) {
      this.waited = waited;
      this.key = waited.key();
      this.fingerprint = waited.fingerprint();
      this.registration = store.watch(key, this::wake);
    }

    /** Looks again when the holder's lease would run out, had it not been renewed. */
    synchronized void lookAt(Duration leaseRemaining) {
      if (!closed && (leaseEnd == null || leaseEnd.isDone())) {
        leaseEnd =
            timer.schedule(this::wake, leaseRemaining.toMillis() + LEASE_END_SLACK_MILLIS,
                TimeUnit.MILLISECONDS);
      }
    }

    private void wake() {
      if (wakes.getAndIncrement() == 0) {
        workers.execute(this::look);
      }
    }

    /**
     * Looks until the key settles or no wake-up came during the last look: one that came while
     * the claim was reading may have been for a change that the read did not see.
     */
    private void look() {
      int answered;
      do {
        answered = wakes.get();
        Outcome outcome;
        try {
          ClaimResult claim = store.claim(key, fingerprint);
          if (claim instanceof ClaimResult.InProgress inProgress) {
            lookAt(inProgress.leaseRemaining());
            continue;
          }
          outcome = new Outcome(freed(claim), null);
        } catch (StoreUnavailableException e) {
          outcome = new Outcome(null, e);
        } catch (RuntimeException e) {
          // A bug, not the store away: this wake-up is answered, so that the next one looks
          // again (the holder's lease end, at worst the waiters' own deadline, still come).
          LOG.log(System.Logger.Level.WARNING, "looking at a key that requests wait for failed", e);
          continue;
        }
        settleAll(outcome);
        return; // wakes stays above zero: a settled group never looks again
      } while (wakes.addAndGet(-answered) > 0);
    }

    /** Answers every waiter; one that comes for the key from now on starts a new group. */
    private void settleAll(Outcome outcome) {
      groups.remove(waited, this);
      close();
      for (Waiter waiter : waiters) {
        waiter.settle(outcome);
      }
    }

    /**
     * The first request was released (or its node died): the key is free, and this look now holds
     * it. It lets it go again, so that each waiting client retries and one of them runs it.
     */
    private ClaimResult freed(ClaimResult claim) {
      if (!(claim instanceof ClaimResult.Held held)) {
        return claim;
      }
      Execution.releaseQuietly(store, key, held.token());
      return new ClaimResult.InProgress(Duration.ZERO);
    }

    /** The group settled or its last waiter left: stop listening and looking. */
    synchronized void close() {
      if (closed) {
        return;
      }
      closed = true;
      registration.close();
      if (leaseEnd != null) {
        leaseEnd.cancel(false);
      }
    }
  }
}
