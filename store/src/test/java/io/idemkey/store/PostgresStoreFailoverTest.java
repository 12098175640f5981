package io.idemkey.store;

import static io.idemkey.store.IdempotencyStoreContract.fingerprint;
import static io.idemkey.store.IdempotencyStoreContract.response;
import static io.idemkey.store.IdempotencyStoreContract.tokenOf;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.migrations.Migrations;
import io.idemkey.migrations.TableName;
import java.nio.file.Path;
import java.sql.SQLException;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * SPEC §14: the store on a primary with a synchronous standby, reached through a multi-host URL,
 * when the primary dies and the standby is promoted. Each test runs its own pair.
 */
class PostgresStoreFailoverTest {

  static final Duration CONNECT_TIMEOUT = Duration.ofMillis(500);
  static final Duration RECOVERY = Duration.ofSeconds(30);

  @TempDir Path dir;

  @Test
  void claim_primaryKilledThenStandbyPromoted_unavailableMeanwhileThenTheNewPrimaryReplays()
      throws Exception {
    try (PrimaryAndStandby pair = PrimaryAndStandby.start(dir, true);
        HikariDataSource handedIn = pool(pair.url())) {
      Map<String, IdempotencyStore> stores = new LinkedHashMap<>();
      stores.put("own pool", builder(StoreBuilder.postgres(pair.url(), "postgres", "postgres")));
      stores.put("handed-in pool", builder(StoreBuilder.postgres(handedIn)));
      Map<String, IdempotencyKey> completed = new LinkedHashMap<>();
      try {
        for (Map.Entry<String, IdempotencyStore> store : stores.entrySet()) {
          IdempotencyKey key = key();
          store.getValue().complete(
              key, tokenOf(store.getValue().claim(key, fingerprint("a"))), response("paid"));
          completed.put(store.getKey(), key);
        }

        pair.killPrimary();
        for (IdempotencyStore store : stores.values()) {
          assertThatThrownBy(() -> store.claim(key(), fingerprint("a")))
              .isInstanceOf(StoreUnavailableException.class);
        }
        pair.promoteStandby();

        for (Map.Entry<String, IdempotencyStore> store : stores.entrySet()) {
          IdempotencyStore node = store.getValue();
          // Synchronous replication: what was acknowledged before the kill is on the new primary.
          ClaimResult replay =
              untilAvailable(() -> node.claim(completed.get(store.getKey()), fingerprint("a")));
          assertThat(replay).as(store.getKey()).isInstanceOf(ClaimResult.Completed.class);
          assertThat(((ClaimResult.Completed) replay).response()).isEqualTo(response("paid"));
          assertThat(node.claim(key(), fingerprint("a")))
              .as(store.getKey()).isInstanceOf(ClaimResult.Acquired.class);
        }
      } finally {
        stores.values().forEach(IdempotencyStore::close);
      }
    }
  }

  // What a URL without targetServerType=primary (or a name that now points at a standby) reaches
  // when the primary is gone: a server that refuses writes. The store is unavailable (503), the
  // request has not failed.
  @Test
  void claim_onlyAReadOnlyStandbyReachable_isStoreUnavailable() throws Exception {
    try (PrimaryAndStandby pair = PrimaryAndStandby.start(dir, true);
        HikariDataSource primary = pool(pair.url());
        HikariDataSource standby = pool(pair.standbyUrl())) {
      Migrations.migrate(primary, TableName.DEFAULT);
      pair.awaitStandbyCaughtUp();

      try (IdempotencyStore store = builder(StoreBuilder.postgres(standby).migrate(false))) {
        assertThatThrownBy(() -> store.claim(key(), fingerprint("a")))
            .isInstanceOf(StoreUnavailableException.class)
            .satisfies(e -> assertThat(readOnly(e)).as("SQLSTATE 25006 in %s", e).isTrue());
      }
    }
  }

  /**
   * The waiters' listening connection is lost with the primary; it listens again on the new
   * primary, and hears a completion there. A key's callback that runs while a second key's, watched
   * as long, does not, was a notification for that key, not the wake-up of every watcher that a
   * lost connection causes.
   */
  @Test
  void watch_primaryKilledThenStandbyPromoted_hearsCompletionsOnTheNewPrimary() throws Exception {
    try (PrimaryAndStandby pair = PrimaryAndStandby.start(dir, true);
        HikariDataSource handedIn = pool(pair.url())) {
      try (IdempotencyStore watching = builder(StoreBuilder.postgres(handedIn));
          IdempotencyStore completing =
              builder(StoreBuilder.postgres(pair.url(), "postgres", "postgres"))) {
        assertThat(heardOneCompletion(watching, completing)).as("before the kill").isTrue();

        pair.killPrimary();
        pair.promoteStandby();

        assertThat(heardOneCompletion(watching, completing)).as("after the promotion").isTrue();
      }
    }
  }

  /**
   * Tries, until {@link #RECOVERY} has passed, to hear a completion of one key (made by {@code
   * completing}) through {@code watching}'s listener, while a key watched beside it is not woken.
   */
  private static boolean heardOneCompletion(IdempotencyStore watching, IdempotencyStore completing)
      throws InterruptedException {
    long deadline = System.nanoTime() + RECOVERY.toNanos();
    while (System.nanoTime() < deadline) {
      IdempotencyKey bystander = key();
      IdempotencyKey completed = key();
      CountDownLatch bystanderWoken = new CountDownLatch(1);
      CountDownLatch completedHeard = new CountDownLatch(1);
      IdempotencyStore.Registration first = null;
      IdempotencyStore.Registration second = null;
      try {
        // Both held, as a waiter finds its key before it watches it (a key not held wakes its
        // watcher at once: it may have settled).
        untilAvailable(() -> completing.claim(bystander, fingerprint("a")));
        ClaimResult claim = untilAvailable(() -> completing.claim(completed, fingerprint("a")));
        first = watching.watch(bystander, bystanderWoken::countDown);
        second = watching.watch(completed, completedHeard::countDown);
        completing.complete(completed, tokenOf(claim), response("paid"));
        if (completedHeard.await(2, TimeUnit.SECONDS) && bystanderWoken.getCount() == 1) {
          return true;
        }
      } catch (StoreUnavailableException e) {
        // the completing store is not back yet
      } finally {
        if (first != null) {
          first.close();
        }
        if (second != null) {
          second.close();
        }
      }
    }
    return false;
  }

  private static IdempotencyStore builder(StoreBuilder builder) {
    return builder
        .connectTimeout(CONNECT_TIMEOUT)
        .cacheMaxBytes(0) // every answer from the database, none from memory
        .purgeInterval(Duration.ZERO)
        .notifySettled(true)
        .build();
  }

  private static HikariDataSource pool(String url) {
    HikariConfig config = new HikariConfig();
    config.setJdbcUrl(url);
    config.setUsername("postgres");
    config.setPassword("postgres");
    config.setMaximumPoolSize(4);
    config.setConnectionTimeout(CONNECT_TIMEOUT.toMillis());
    config.setInitializationFailTimeout(-1);
    return new HikariDataSource(config);
  }

  static IdempotencyKey key() {
    return new IdempotencyKey("scope", UUID.randomUUID().toString());
  }

  /** Calls {@code call} until it answers, for at most {@link #RECOVERY}. */
  private static <T> T untilAvailable(Supplier<T> call) throws InterruptedException {
    long deadline = System.nanoTime() + RECOVERY.toNanos();
    while (true) {
      try {
        return call.get();
      } catch (StoreUnavailableException e) {
        if (System.nanoTime() > deadline) {
          throw e;
        }
        Thread.sleep(50);
      }
    }
  }

  private static boolean readOnly(Throwable e) {
    for (Throwable cause = e; cause != null; cause = cause.getCause()) {
      if (cause instanceof SQLException sql && "25006".equals(sql.getSQLState())) {
        return true;
      }
    }
    return false;
  }
}
