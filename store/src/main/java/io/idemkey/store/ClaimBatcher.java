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
 * Group commit for claims: the claims that arrive while batches are being written are sent
 * together, as one statement and one commit, by whichever of their callers leads next. A lone
 * claim goes out at once on its caller's thread; under load, up to {@link #MAX_LEADERS} batches
 * are in flight, each taking everything queued when it starts. There is no thread of its own and
 * no artificial delay.
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
  /**
   * Batches in flight at once: while one waits for its commit to reach the disk, the next is
   * already on its way, and PostgreSQL flushes their commits together.
   */
  static final int MAX_LEADERS = 2;
  private static final int MAX_ATTEMPTS = 5;
  private static final Comparator<Pending> KEY_ORDER =
      Comparator.comparing((Pending p) -> p.key.scope()).thenComparing(p -> p.key.key());

  private final Writer writer;
  private final ArrayDeque<Pending> queue = new ArrayDeque<>();
  /** Callers writing a batch now; at most {@link #MAX_LEADERS}. */
  private int leaders;
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
    /** Its caller holds a leader's place (guarded by the batcher). */
    private boolean leading;
    /** Its caller is to lead next (guarded by this pending); cleared when the caller sees it. */
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

  /** Writes what is queued (if another leader has not taken it all), then hands over the lead. */
  private void writeOneBatch(Pending leader) {
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
      if (!batch.isEmpty()) {
        batches++;
        claims += batch.size();
      }
    }
    if (batch.isEmpty()) {
      handOff(leader, List.of());
      return;
    }
    batch.sort(KEY_ORDER);
    List<ClaimResult> results = null;
    RuntimeException failure = null;
    try {
      results = writer.claimAll(batch);
    } catch (RuntimeException e) {
      failure = e;
    } catch (Error e) {
      // Every claim of the batch is answered and the lead handed on, or their callers, and every
      // claim after them, would wait for ever.
      failure = new IdempotencyException("writing a batch of claims failed: " + e, e);
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
    handOff(leader, again);
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

  /**
   * Queues the claims to run again first; then the leader's place goes to the oldest queued caller
   * that does not lead already, or is given up when there is none.
   */
  private void handOff(Pending leader, List<Pending> again) {
    Pending next = null;
    synchronized (this) {
      for (int i = again.size() - 1; i >= 0; i--) {
        queue.addFirst(again.get(i));
      }
      leader.leading = false;
      for (Pending queued : queue) {
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
