package io.idemkey.store;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.lang.ref.Reference;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The heap that a store bounded by {@code cache.max-bytes} really retains, measured after a
 * million distinct keys (issue 8 item 7): within 10% of the bound, plus a small fixed slack for
 * the cache's own tables.
 */
class RetainedHeapTest {

  private static final long MAX_BYTES = 8L << 20;
  private static final int KEYS = 1_000_000;
  /** The hash table, the frequency sketch and the buffers, whose size does not follow weights. */
  private static final long SLACK = 512L << 10;
  private static final Duration TTL = Duration.ofHours(24);

  @Test
  void claim_millionDistinctCompletedKeys_cacheRetainsMaxBytesWithinTenPercent() throws Exception {
    warmUp();
    long before = liveHeap();
    CachingStore cache = new CachingStore(new CompletedEverywhere(), MAX_BYTES, TTL, TTL, null);
    MessageDigest sha256 = sha256();

    for (int i = 0; i < KEYS; i++) {
      cache.claim(key(i), fingerprint(sha256, i));
    }

    long entries = cache.cachedEntries();
    long weighed = cache.cachedBytes();
    long retained = liveHeap() - before;
    Reference.reachabilityFence(cache);
    report("CachingStore", entries, weighed, retained);
    assertThat(entries).as("entries held").isBetween(1_000L, (long) KEYS / 10);
    assertThat(weighed).as("weighed bytes").isBetween(MAX_BYTES * 95 / 100, MAX_BYTES);
    assertThat(retained)
        .as("heap retained by %d entries", entries)
        .isBetween(MAX_BYTES * 9 / 10 - SLACK, MAX_BYTES * 11 / 10 + SLACK);
  }

  @Test
  void complete_millionDistinctKeys_memoryStoreRetainsMaxBytesWithinTenPercent()
      throws Exception {
    warmUp();
    long before = liveHeap();
    MemoryStore store = new MemoryStore(MutableClock.atEpochDay(), TTL, TTL, MAX_BYTES);
    MessageDigest sha256 = sha256();

    for (int i = 0; i < KEYS; i++) {
      IdempotencyKey key = key(i);
      ClaimResult.Acquired claim = (ClaimResult.Acquired) store.claim(key, fingerprint(sha256, i));
      store.complete(key, claim.token(), payment(i));
    }

    long entries = store.size();
    long weighed = store.completedBytes();
    long retained = liveHeap() - before;
    Reference.reachabilityFence(store);
    report("MemoryStore", entries, weighed, retained);
    assertThat(entries).as("entries held").isBetween(1_000L, (long) KEYS / 10);
    assertThat(weighed).as("weighed bytes").isBetween(MAX_BYTES * 95 / 100, MAX_BYTES);
    assertThat(retained)
        .as("heap retained by %d entries", entries)
        .isBetween(MAX_BYTES * 9 / 10 - SLACK, MAX_BYTES * 11 / 10 + SLACK);
  }

  private static void report(String store, long entries, long weighed, long retained) {
    System.out.printf(
        "%s cache.max-bytes=%d after %d keys: %d entries, weighed %d bytes (%d per entry),"
            + " heap retained %d bytes (%d per entry, %.1f%% of max-bytes)%n",
        store, MAX_BYTES, KEYS, entries, weighed, weighed / entries, retained,
        retained / entries, 100.0 * retained / MAX_BYTES);
  }

  /** Loads the classes the measured code uses, so that their mirrors are not counted. */
  private static void warmUp() throws Exception {
    CachingStore cache = new CachingStore(new CompletedEverywhere(), MAX_BYTES, TTL, TTL, null);
    MessageDigest sha256 = sha256();
    for (int i = 0; i < 10_000; i++) {
      cache.claim(key(-i), fingerprint(sha256, -i));
    }
    cache.cachedBytes();
    cache.close();
    MemoryStore store = new MemoryStore(MutableClock.atEpochDay(), TTL, TTL, MAX_BYTES);
    for (int i = 0; i < 10_000; i++) {
      IdempotencyKey key = key(-i);
      ClaimResult.Acquired claim = (ClaimResult.Acquired) store.claim(key, fingerprint(sha256, -i));
      store.complete(key, claim.token(), payment(i));
    }
    store.completedBytes();
  }

  /** The heap in use after full collections: the least of a few, as other threads allocate. */
  private static long liveHeap() {
    MemoryMXBean memory = ManagementFactory.getMemoryMXBean();
    long least = Long.MAX_VALUE;
    for (int i = 0; i < 4; i++) {
      System.gc();
      least = Math.min(least, memory.getHeapMemoryUsage().getUsed());
    }
    return least;
  }

  /**
   * A principal's scope (one in ten outside Latin-1, so stored two bytes a character) and a
   * client's key, both about as long as real ones.
   */
  private static IdempotencyKey key(int i) {
    String principal = (i % 10 == 0 ? "Σωκράτης-" : "customer-") + (i % 5000);
    return new IdempotencyKey(
        "principal:" + principal + "@payments.example.com",
        "checkout-" + Integer.toHexString(i) + "-7d1f0c2a-4b5e-4e8f-9a6b-3c2d1e0f9a8b-attempt-1");
  }

  private static Fingerprint fingerprint(MessageDigest sha256, int i) {
    return new Fingerprint(sha256.digest(("request " + i).getBytes(StandardCharsets.UTF_8)));
  }

  private static MessageDigest sha256() throws NoSuchAlgorithmException {
    return MessageDigest.getInstance("SHA-256");
  }

  /**
   * A payment's response, its headers decoded afresh each time as the PostgreSQL store decodes
   * them: nothing is shared between entries.
   */
  private static StoredResponse payment(int id) {
    List<ResponseHeader> headers =
        HeaderCodec.decode(
            HeaderCodec.encode(
                List.of(
                    new ResponseHeader("Content-Type", "application/json"),
                    new ResponseHeader("Location", "/payments/" + id))));
    byte[] body =
        ("{\"id\":" + id + ",\"amount\":1250,\"currency\":\"EUR\",\"status\":\"accepted\","
                + "\"created\":\"2026-01-01T00:00:00Z\",\"customer\":\"customer-" + id % 5000
                + "\",\"description\":\"order " + id + "\"}")
            .getBytes(StandardCharsets.UTF_8);
    return new StoredResponse(201, headers, body, true);
  }

  /** Answers every claim with a new payment's response. */
  private static final class CompletedEverywhere implements IdempotencyStore {
    private int next;

    @Override
    public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
      return new ClaimResult.Completed(payment(++next), TTL);
    }

    @Override
    public boolean complete(IdempotencyKey key, long token, StoredResponse response) {
      return false;
    }

    @Override
    public boolean release(IdempotencyKey key, long token) {
      return false;
    }

    @Override
    public boolean renew(IdempotencyKey key, long token) {
      return false;
    }

    @Override
    public StoreTransaction beginTransaction(IdempotencyKey key, long token) {
      throw new UnsupportedOperationException();
    }

    @Override
    public int purgeExpired() {
      return 0;
    }

    @Override
    public void close() {}
  }
}
