package io.idemkey.benchmarks;

import io.idemkey.store.ClaimResult;
import io.idemkey.store.Fingerprint;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.ResponseHeader;
import io.idemkey.store.StoreBuilder;
import io.idemkey.store.StoredResponse;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * One store, chosen by {@code store}: {@code memory} ({@code StoreBuilder.memory()}), {@code
 * postgres} (PostgreSQL with the cache off, {@code cacheMaxBytes(0)}) or {@code cached} (what
 * {@code StoreBuilder.postgres(...)} builds by default: the Caffeine cache in front of
 * PostgreSQL). The PostgreSQL stores run on an embedded server started for the trial with fsync and
 * synchronous commit on, so each write pays for its WAL flush as it would in production.
 *
 * <p>Holds a response of {@code bodyBytes} and {@value #COMPLETED_KEYS} keys completed with it
 * before the trial, which the replay benchmark claims in turn.
 */
@State(Scope.Benchmark)
public class StoreState {

  /** Completed keys that replays cycle through: 256 × 64 KiB stays well inside the cache. */
  static final int COMPLETED_KEYS = 256;

  @Param({"memory", "postgres", "cached"})
  public String store;

  @Param({"1024", "65536"})
  public int bodyBytes;

  IdempotencyStore idempotencyStore;
  Fingerprint fingerprint;
  StoredResponse response;
  IdempotencyKey[] completedKeys;

  private final AtomicLong nextNewKey = new AtomicLong();
  private final AtomicLong nextReplay = new AtomicLong();
  private DurablePostgres postgres;

  @Setup(Level.Trial)
  public void setUp() throws Exception {
    Random random = new Random(42);
    byte[] digest = new byte[Fingerprint.LENGTH];
    random.nextBytes(digest);
    fingerprint = new Fingerprint(digest);
    byte[] body = new byte[bodyBytes];
    random.nextBytes(body);
    response =
        new StoredResponse(
            201,
            List.of(
                new ResponseHeader("Content-Type", "application/json"),
                new ResponseHeader("Location", "/payments/1000000")),
            body,
            true);
    idempotencyStore = build();
    completedKeys = new IdempotencyKey[COMPLETED_KEYS];
    for (int i = 0; i < COMPLETED_KEYS; i++) {
      completedKeys[i] = new IdempotencyKey("bench", "completed-" + i);
      claimAndComplete(completedKeys[i]);
    }
  }

  private IdempotencyStore build() throws Exception {
    switch (store) {
      case "memory":
        return StoreBuilder.memory().build();
      case "postgres":
      case "cached":
        postgres = DurablePostgres.start(false);
        postgres.requireDurable();
        StoreBuilder builder =
            StoreBuilder.postgres(postgres.jdbcUrl(), postgres.user(), postgres.password());
        return (store.equals("postgres") ? builder.cacheMaxBytes(0) : builder).build();
      default:
        throw new IllegalArgumentException("unknown store " + store);
    }
  }

  /** A key never claimed before in this trial. */
  IdempotencyKey newKey() {
    return new IdempotencyKey("bench", "new-" + nextNewKey.incrementAndGet());
  }

  /** The next of the completed keys, in turn. */
  IdempotencyKey completedKey() {
    return completedKeys[(int) (nextReplay.getAndIncrement() % COMPLETED_KEYS)];
  }

  /**
   * Claims a new key and completes it with the response.
   *
   * @throws IllegalStateException if the key was not acquired or not completed
   */
  boolean claimAndComplete(IdempotencyKey key) {
    ClaimResult claim = idempotencyStore.claim(key, fingerprint);
    if (!(claim instanceof ClaimResult.Acquired acquired)) {
      throw new IllegalStateException("a new key was not acquired: " + claim);
    }
    if (!idempotencyStore.complete(key, acquired.token(), response)) {
      throw new IllegalStateException("the completion of a new key was refused");
    }
    return true;
  }

  @TearDown(Level.Trial)
  public void tearDown() throws Exception {
    try {
      idempotencyStore.close();
    } finally {
      if (postgres != null) {
        postgres.close();
      }
    }
  }
}
