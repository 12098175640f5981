package io.idemkey.execution;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.store.ClaimResult;
import io.idemkey.store.Fingerprint;
import io.idemkey.store.ForwardingStore;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.StoreBuilder;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Lease renewals on real threads, over the memory store with one key's renewals made slow. */
class LeaseRenewalsTest {

  static final Duration LEASE = Duration.ofMillis(900);

  final IdempotencyStore memory = StoreBuilder.memory().lease(LEASE).build();
  final Map<String, AtomicInteger> renewals = new ConcurrentHashMap<>();
  final SlowRenewals store = new SlowRenewals();
  final LeaseRenewals leases = new LeaseRenewals(store, LEASE);

  @AfterEach
  void close() {
    leases.close();
    memory.close();
  }

  /** The memory store, with every renewal of the key "slow" taking 3 s, and renewals counted. */
  final class SlowRenewals extends ForwardingStore {
    SlowRenewals() {
      super(memory);
    }

    @Override
    public boolean renew(IdempotencyKey key, long token) {
      renewals.computeIfAbsent(key.key(), k -> new AtomicInteger()).incrementAndGet();
      if (key.key().equals("slow")) {
        try {
          Thread.sleep(3_000);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
      return memory.renew(key, token);
    }
  }

  static long claim(IdempotencyStore store, String name) {
    return ((ClaimResult.Acquired)
            store.claim(new IdempotencyKey("s", name), new Fingerprint(new byte[32])))
        .token();
  }

  @Test
  void start_oneSlowRenewal_otherLeaseKeepsBeingRenewed() throws Exception {
    IdempotencyKey slow = new IdempotencyKey("s", "slow");
    IdempotencyKey other = new IdempotencyKey("s", "other");
    leases.start(slow, claim(store, "slow"), () -> {});
    AtomicInteger otherLost = new AtomicInteger();
    leases.start(other, claim(store, "other"), otherLost::incrementAndGet);

    Thread.sleep(2_000); // a third of a lease is 300 ms: several renewals are due

    assertThat(renewals.get("other").get()).isGreaterThanOrEqualTo(3);
    assertThat(otherLost.get()).isZero();
    // The slow key's renewal is still in its first call: none queued up behind it.
    assertThat(renewals.get("slow").get()).isEqualTo(1);
    assertThat(store.claim(other, new Fingerprint(new byte[32])))
        .isInstanceOf(ClaimResult.InProgress.class);
  }

  @Test
  void start_leaseLost_stopsRenewingAndReportsOnce() throws Exception {
    IdempotencyKey key = new IdempotencyKey("s", "lost");
    long token = claim(store, "lost");
    AtomicInteger reported = new AtomicInteger();
    leases.start(key, token, reported::incrementAndGet);
    memory.release(key, token); // the key is gone: the next renewal finds the lease lost

    Thread.sleep(1_500);

    assertThat(reported.get()).isEqualTo(1);
    assertThat(renewals.get("lost").get()).isEqualTo(1);
  }
}
