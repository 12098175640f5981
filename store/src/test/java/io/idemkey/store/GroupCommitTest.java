package io.idemkey.store;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** Group commit's hand-over of the lead, with a writer that fails. */
class GroupCommitTest {

  static IdempotencyKey key(String name) {
    return new IdempotencyKey("s", name);
  }

  @Test
  void claim_batchWriterThrowsError_otherCallersInThatBatchAreAnswered() throws Exception {
    CountDownLatch firstTwoWriting = new CountDownLatch(2);
    CountDownLatch releaseA = new CountDownLatch(1);
    CountDownLatch releaseB = new CountDownLatch(1);
    AtomicInteger calls = new AtomicInteger();
    GroupCommit<Fingerprint, ClaimResult> batcher =
        new GroupCommit<>(
            batch -> {
              int call = calls.incrementAndGet();
              try {
                if (call == 1) {
                  firstTwoWriting.countDown();
                  releaseA.await();
                } else if (call == 2) {
                  firstTwoWriting.countDown();
                  releaseB.await();
                } else {
                  // e.g. an OutOfMemoryError in the driver while reading the batch's rows
                  throw new OutOfMemoryError("simulated, batch of " + batch.size());
                }
              } catch (InterruptedException e) {
                throw new IllegalStateException(e);
              }
              List<ClaimResult> results = new ArrayList<>();
              batch.forEach(p -> results.add(new ClaimResult.Acquired(1)));
              return results;
            }, item -> 1, GroupCommit.MAX_BATCH, null);
    Fingerprint fp = new Fingerprint(new byte[32]);
    CompletableFuture<Object> a = claimAsync(batcher, key("a"), fp);
    CompletableFuture<Object> b = claimAsync(batcher, key("b"), fp);
    assertThat(firstTwoWriting.await(5, TimeUnit.SECONDS)).isTrue(); // two leaders writing
    CompletableFuture<Object> c = claimAsync(batcher, key("c"), fp);
    CompletableFuture<Object> d = claimAsync(batcher, key("d"), fp);
    Thread.sleep(300); // c and d queued behind the two leaders
    releaseA.countDown(); // A hands the lead to C, whose batch [c, d] fails with an Error
    assertThat(c.handle((r, e) -> e).get(5, TimeUnit.SECONDS))
        .isInstanceOf(IdempotencyException.class).hasCauseInstanceOf(OutOfMemoryError.class);
    releaseB.countDown();
    // Regression: d was in C's batch and was never answered.
    Object dOutcome = d.handle((r, e) -> r != null ? r : e).completeOnTimeout("STILL WAITING", 5,
        TimeUnit.SECONDS).get();
    assertThat(dOutcome).isNotEqualTo("STILL WAITING");
  }

  @Test
  void claim_twoBatchesThrowError_laterClaimsStillGoOut() throws Exception {
    AtomicInteger calls = new AtomicInteger();
    GroupCommit<Fingerprint, ClaimResult> batcher =
        new GroupCommit<>(
            batch -> {
              if (calls.incrementAndGet() <= 2) {
                throw new StackOverflowError("simulated");
              }
              List<ClaimResult> results = new ArrayList<>();
              batch.forEach(p -> results.add(new ClaimResult.Acquired(1)));
              return results;
            }, item -> 1, GroupCommit.MAX_BATCH, null);
    Fingerprint fp = new Fingerprint(new byte[32]);
    for (String name : List.of("x", "y")) {
      assertThat(claimAsync(batcher, key(name), fp).handle((r, e) -> e).get(5, TimeUnit.SECONDS))
          .isInstanceOf(IdempotencyException.class).hasCauseInstanceOf(StackOverflowError.class);
    }
    // Regression: two leader places leaked, and this claim was queued with no leader for ever.
    Object later = claimAsync(batcher, key("z"), fp).handle((r, e) -> r != null ? r : e)
        .completeOnTimeout("STILL WAITING", 5, TimeUnit.SECONDS).get();
    assertThat(later).isInstanceOf(ClaimResult.Acquired.class);
  }

  static CompletableFuture<Object> claimAsync(GroupCommit<Fingerprint, ClaimResult> batcher,
      IdempotencyKey key, Fingerprint fp) {
    CompletableFuture<Object> future = new CompletableFuture<>();
    Thread thread = new Thread(() -> {
      try {
        future.complete(batcher.submit(key, fp));
      } catch (Throwable t) {
        future.completeExceptionally(t);
      }
    });
    thread.setDaemon(true);
    thread.start();
    return future;
  }
}
