package io.idemkey.store;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** Regression: a watcher's failure failed complete() (the key stored) and skipped the other watchers. */
class MemoryStoreWatchTest {

  @Test
  void complete_aWatcherThrows_completionStillAnswersTrueAndOtherWatchersAreWoken() {
    MemoryStore store =
        new MemoryStore(Clock.systemUTC(), Duration.ofHours(1), Duration.ofSeconds(30), 0);
    IdempotencyKey key = new IdempotencyKey("s", "k");
    long token = ((ClaimResult.Held) store.claim(key, new Fingerprint(new byte[32]))).token();
    // e.g. Waiters.wake after its pool was shut down (a filter destroyed, the store shared)
    store.watch(key, () -> {
      throw new RejectedExecutionException("waiters closed");
    });
    AtomicInteger woken = new AtomicInteger();
    store.watch(key, woken::incrementAndGet);

    Object outcome;
    try {
      outcome = store.complete(key, token, new StoredResponse(201, List.of(), new byte[0], true));
    } catch (RuntimeException e) {
      outcome = e;
    }

    assertThat(outcome + ", other watcher woken " + woken.get() + " time(s)")
        .isEqualTo("true, other watcher woken 1 time(s)");
  }
}
