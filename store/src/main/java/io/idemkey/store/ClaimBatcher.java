package io.idemkey.store;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Set;

/**
 * Group commit for claims: the claims that arrive while one is being written are sent together,
 * as one statement and one commit, by whichever of their callers leads next. A lone claim goes out
 * at once on its caller's thread; under load, each batch takes everything queued behind the one
 * before it. There is no thread of its own and no artificial delay.
 *
 * <p>One claim per key goes into a batch (a second waits for the next, where it finds the key in
 * progress); keys are sorted, so that batches on different nodes lock rows in one order and never
 * deadlock. A claim that lost a race it could not see is queued again, up to a bound.
 *
 * <p>Thread-safe.
 */
final class ClaimBatcher {

  /** Writes one batch; a null result means the claim lost a race and must be run again. */
  interface Writer {
    List<ClaimResult> claimAll(List<Pending> batch);
  }

  static final int MAX_BATCH = 64;
  private static final int MAX_ATTEMPTS = 5;
  private static final Comparator<Pending> KEY_ORDER =
      Comparator.comparing((Pending p) -> p.key.scope()).thenComparing(p -> p.key.key());

  private final Writer writer;
  private final ArrayDeque<Pending> queue = new ArrayDeque<>();
  private boolean leading;
  private long batches;
  private long claims;

  ClaimBatcher(Writer writer) {
    this.writer = writer;
  }

  /** One claim waiting for its batch. */
  static final class Pending {
    final IdempotencyKey key;
    final Fingerprint fingerprint;
    private int attempts;
    private boolean lead;
    private ClaimResult result;
    private RuntimeException failure;

    Pending(IdempotencyKey key, Fingerprint fingerprint) {
      this.key = key;
      this.fingerprint = fingerprint;
    }
  }

  /**
   * Claims {@code key}, in a batch with whatever else is queued.
   *
   * @throws StoreUnavailableException if the batch could not be written
   */
  ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
    Pending pending = new Pending(key, fingerprint);
    boolean lead;
    synchronized (this) {
      queue.addLast(pending);
      lead = !leading;
      leading = true;
    }
    if (!lead) {
      lead = awaitTurn(pending);
    }
    while (lead) {
      writeOneBatch();
      lead = awaitTurn(pending);
    }
    if (pending.failure != null) {
      throw pending.failure;
    }
    return pending.result;
  }

  /** Waits until the claim is settled (false) or its caller is to lead the next batch (true). */
  private boolean awaitTurn(Pending pending) {
    boolean interrupted = false;
    try {
      synchronized (pending) {
        while (pending.result == null && pending.failure == null && !pending.lead) {
          try {
            pending.wait();
          } catch (InterruptedException e) {
            // Another caller's batch may already hold this claim: it is settled either way.
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

  private void writeOneBatch() {
    List<Pending> batch = new ArrayList<>();
    synchronized (this) {
      Set<IdempotencyKey> keys = new HashSet<>();
      for (Iterator<Pending> it = queue.iterator(); it.hasNext() && batch.size() < MAX_BATCH; ) {
        Pending next = it.next();
        if (keys.add(next.key)) {
          batch.add(next);
          it.remove();
        }
      }
      batches++;
      claims += batch.size();
    }
    batch.sort(KEY_ORDER);
    List<ClaimResult> results = null;
    RuntimeException failure = null;
    try {
      results = writer.claimAll(batch);
    } catch (RuntimeException e) {
      failure = e;
    }
    List<Pending> again = new ArrayList<>();
    for (int i = 0; i < batch.size(); i++) {
      Pending pending = batch.get(i);
      ClaimResult result = results == null ? null : results.get(i);
      if (failure == null && result == null && ++pending.attempts < MAX_ATTEMPTS) {
        again.add(pending);
        continue;
      }
      settle(pending, result, failure);
    }
    handOff(again);
  }

  private static void settle(Pending pending, ClaimResult result, RuntimeException failure) {
    synchronized (pending) {
      if (failure != null) {
        pending.failure = failure;
      } else {
        // Never seen in practice; answering "in progress" makes the client retry shortly.
        pending.result = result != null ? result : new ClaimResult.InProgress(Duration.ofSeconds(1));
      }
      pending.notifyAll();
    }
  }

  /** Queues the claims to run again first, then makes the oldest queued caller the next leader. */
  private void handOff(List<Pending> again) {
    Pending next;
    synchronized (this) {
      for (int i = again.size() - 1; i >= 0; i--) {
        queue.addFirst(again.get(i));
      }
      next = queue.peekFirst();
      leading = next != null;
    }
    if (next != null) {
      synchronized (next) {
        next.lead = true;
        next.notifyAll();
      }
    }
  }

  /** Claims written per batch on average since the start. */
  synchronized double averageBatchSize() {
    return batches == 0 ? 0 : (double) claims / batches;
  }

  @Override
  public synchronized String toString() {
    return String.format(
        java.util.Locale.ROOT, "%d claims in %d batches (%.2f per batch)", claims, batches,
        averageBatchSize());
  }
}
