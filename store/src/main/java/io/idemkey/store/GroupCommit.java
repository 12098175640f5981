package io.idemkey.store;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.function.ToLongFunction;

/**
 * Group commit: the calls (claims, or completions) that arrive while batches are being written are
 * sent together, as one statement and one commit, by whichever of their callers leads next. A lone
 * call goes out at once on its caller's thread; under load, up to {@link #MAX_LEADERS} batches
 * are in flight, each taking what is queued when it starts, up to {@link #MAX_BATCH} calls and
 * {@code maxWeight} (a completion weighs its body's bytes; one call always fits). There is no
 * thread of its own and no artificial delay.
 *
 * <p>One call per key goes into a batch (a second waits for the next); keys are sorted, so that
 * batches on different nodes lock rows in one order. A call that lost a race it could not see (a
 * null result) is queued again, up to a bound.
 *
 * <p>Thread-safe.
 *
 * @param <T> what a call writes
 * @param <R> its result
 */
final class GroupCommit<T, R> {

  /** Writes one batch; a null result means the call lost a race and must be run again. */
  interface Writer<T, R> {
    List<R> writeAll(List<Pending<T, R>> batch);
  }

  static final int MAX_BATCH = 64;
  /**
   * Batches in flight at once: while one waits for its commit to reach the disk, the next is
   * already on its way, and PostgreSQL flushes their commits together.
   */
  static final int MAX_LEADERS = 2;
  private static final int MAX_ATTEMPTS = 5;
  private static final Comparator<Pending<?, ?>> KEY_ORDER =
      Comparator.comparing((Pending<?, ?> p) -> p.key.scope()).thenComparing(p -> p.key.key());

  private final Writer<T, R> writer;
  private final ToLongFunction<T> weight;
  private final long maxWeight;
  private final R unresolved;
  private final ArrayDeque<Pending<T, R>> queue = new ArrayDeque<>();
  /** Callers writing a batch now; at most {@link #MAX_LEADERS}. */
  private int leaders;
  private long batches;
  private long calls;

  /**
   * @param weight what a call weighs towards {@code maxWeight}
   * @param unresolved the answer to a call that lost its race {@link #MAX_ATTEMPTS} times
   */
  GroupCommit(Writer<T, R> writer, ToLongFunction<T> weight, long maxWeight, R unresolved) {
    this.writer = writer;
    this.weight = weight;
    this.maxWeight = maxWeight;
    this.unresolved = unresolved;
  }

  /** One call waiting for its batch. */
  static final class Pending<T, R> {
    final IdempotencyKey key;
    final T item;
    private int attempts;
    /** Its caller holds a leader's place (guarded by the batcher). */
    private boolean leading;
    /** Its caller is to lead next (guarded by this pending); cleared when the caller sees it. */
    private boolean lead;
    private R result;
    private RuntimeException failure;

    Pending(IdempotencyKey key, T item) {
      this.key = key;
      this.item = item;
    }
  }

  /**
   * Writes {@code item} for {@code key}, in a batch with whatever else is queued.
   *
   * @throws RuntimeException what the writer threw for the batch (StoreUnavailableException when
   *     the database could not be reached)
   */
  R submit(IdempotencyKey key, T item) {
    Pending<T, R> pending = new Pending<>(key, item);
    boolean lead;
    synchronized (this) {
      queue.addLast(pending);
      lead = leaders < MAX_LEADERS;
      if (lead) {
        leaders++;
        pending.leading = true;
      }
    }
    if (!lead) {
      lead = awaitTurn(pending);
    }
    while (lead) {
      writeOneBatch(pending);
      lead = awaitTurn(pending);
    }
    if (pending.failure != null) {
      throw pending.failure;
    }
    return pending.result;
  }

  /** Waits until the call is settled (false) or its caller is to lead the next batch (true). */
  private boolean awaitTurn(Pending<T, R> pending) {
    boolean interrupted = false;
    try {
      synchronized (pending) {
        while (pending.result == null && pending.failure == null && !pending.lead) {
          try {
            pending.wait();
          } catch (InterruptedException e) {
            // Another caller's batch may already hold this call: it is settled either way.
            interrupted = true;
          }
        }
        boolean lead = pending.lead;
        pending.lead = false;
        return lead;
      }
    } finally {
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }

  /** Writes what is queued (if another leader has not taken it all), then hands over the lead. */
  private void writeOneBatch(Pending<T, R> leader) {
    List<Pending<T, R>> batch = new ArrayList<>();
    synchronized (this) {
      Set<IdempotencyKey> keys = new HashSet<>();
      long weighed = 0;
      for (Iterator<Pending<T, R>> it = queue.iterator();
          it.hasNext() && batch.size() < MAX_BATCH; ) {
        Pending<T, R> next = it.next();
        long itsWeight = weight.applyAsLong(next.item);
        if (!batch.isEmpty() && weighed + itsWeight > maxWeight) {
          break;
        }
        if (keys.add(next.key)) {
          batch.add(next);
          weighed += itsWeight;
          it.remove();
        }
      }
      if (!batch.isEmpty()) {
        batches++;
        calls += batch.size();
      }
    }
    if (batch.isEmpty()) {
      handOff(leader, List.of());
      return;
    }
    batch.sort(KEY_ORDER);
    List<R> results = null;
    RuntimeException failure = null;
    try {
      results = writer.writeAll(batch);
    } catch (RuntimeException e) {
      failure = e;
    } catch (Error e) {
      // Every call of the batch is answered and the lead handed on, or their callers, and every
      // call after them, would wait for ever.
      failure = new IdempotencyException("writing a batch failed: " + e, e);
    }
    List<Pending<T, R>> again = new ArrayList<>();
    for (int i = 0; i < batch.size(); i++) {
      Pending<T, R> pending = batch.get(i);
      R result = results == null ? null : results.get(i);
      if (failure == null && result == null && ++pending.attempts < MAX_ATTEMPTS) {
        again.add(pending);
        continue;
      }
      settle(pending, result, failure);
    }
    handOff(leader, again);
  }

  private void settle(Pending<T, R> pending, R result, RuntimeException failure) {
    synchronized (pending) {
      if (failure != null) {
        pending.failure = failure;
      } else {
        pending.result = result != null ? result : unresolved; // never seen in practice
      }
      pending.notifyAll();
    }
  }

  /**
   * Queues the calls to run again first; then the leader's place goes to the oldest queued caller
   * that does not lead already, or is given up when there is none.
   */
  private void handOff(Pending<T, R> leader, List<Pending<T, R>> again) {
    Pending<T, R> next = null;
    synchronized (this) {
      for (int i = again.size() - 1; i >= 0; i--) {
        queue.addFirst(again.get(i));
      }
      leader.leading = false;
      for (Pending<T, R> queued : queue) {
        if (!queued.leading) {
          next = queued;
          break;
        }
      }
      if (next == null) {
        leaders--;
      } else {
        next.leading = true;
      }
    }
    if (next != null) {
      synchronized (next) {
        next.lead = true;
        next.notifyAll();
      }
    }
  }

  /** Calls written per batch on average since the start. */
  synchronized double averageBatchSize() {
    return batches == 0 ? 0 : (double) calls / batches;
  }

  @Override
  public synchronized String toString() {
    return String.format(
        java.util.Locale.ROOT, "%d in %d batches (%.2f per batch)", calls, batches,
        averageBatchSize());
  }
}
