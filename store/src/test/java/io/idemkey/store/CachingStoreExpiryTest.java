package io.idemkey.store;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.migrations.TableName;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/**
 * Regression: a claim that finds a key completed caches it until "now + time left", with "now" read
 * after the database answered: a pause between the two (GC, a descheduled thread) makes the entry
 * outlive the record, and it shadows the key's next life.
 */
class CachingStoreExpiryTest {

  static final Duration TTL = Duration.ofSeconds(10);
  static final Duration LEASE = Duration.ofSeconds(1);

  static Fingerprint fp(int b) {
    byte[] bytes = new byte[32];
    bytes[0] = (byte) b;
    return new Fingerprint(bytes);
  }

  static StoredResponse response(String body) {
    return new StoredResponse(201, List.of(), body.getBytes(), true);
  }

  @Test
  void claim_pauseAfterTheDatabaseAnswered_cachedEntryNeverOutlivesTheRecord() {
    MutableClock clock = MutableClock.atEpochDay();
    TableName table = TestDatabase.freshTable();
    PostgresStore database =
        new PostgresStore(TestDatabase.dataSource(), table, clock, TTL, LEASE, 100, null);
    PostgresStore otherNode =
        new PostgresStore(TestDatabase.dataSource(), table, clock, TTL, LEASE, 100, null);
    AtomicBoolean pauseAfterClaim = new AtomicBoolean();
    IdempotencyStore pausing = new IdempotencyStore() {
      @Override
      public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
        ClaimResult result = database.claim(key, fingerprint);
        if (pauseAfterClaim.getAndSet(false)) {
          clock.advance(Duration.ofSeconds(3)); // the claiming thread stalls for 3 s here
        }
        return result;
      }

      @Override
      public boolean complete(IdempotencyKey key, long token, StoredResponse response) {
        return database.complete(key, token, response);
      }

      @Override
      public boolean release(IdempotencyKey key, long token) {
        return database.release(key, token);
      }

      @Override
      public boolean renew(IdempotencyKey key, long token) {
        return database.renew(key, token);
      }

      @Override
      public StoreTransaction beginTransaction(IdempotencyKey key, long token) {
        return database.beginTransaction(key, token);
      }

      @Override
      public int purgeExpired() {
        return database.purgeExpired();
      }

      @Override
      public void close() {}
    };
    CachingStore node = new CachingStore(pausing, 1 << 20, TTL, LEASE, clock);
    IdempotencyKey key = new IdempotencyKey("s", "k");

    // Another node runs the first request; ours has not seen the key.
    long first = ((ClaimResult.Held) otherNode.claim(key, fp(1))).token();
    otherNode.complete(key, first, response("first"));
    clock.advance(TTL.minusSeconds(1)); // one second left

    pauseAfterClaim.set(true);
    assertThat(node.claim(key, fp(1))).isInstanceOf(ClaimResult.Completed.class);
    // Now 2 s past the record's expiry: the key is new (SPEC §7), and another request takes it.
    long second = ((ClaimResult.Held) otherNode.claim(key, fp(2))).token();
    otherNode.complete(key, second, response("second"));

    // The key's second life answers, not the first one's cached entry (a 422 before).
    ClaimResult answer = node.claim(key, fp(2));
    assertThat(answer).isInstanceOf(ClaimResult.Completed.class);
    assertThat(((ClaimResult.Completed) answer).response().body()).isEqualTo("second".getBytes());
  }
}
