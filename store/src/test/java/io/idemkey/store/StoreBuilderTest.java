package io.idemkey.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.idemkey.migrations.TableName;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class StoreBuilderTest {

  @Test
  void build_postgresUrl_migratesAndCachesAndServes() {
    TableName table = new TableName("public", "b" + UUID.randomUUID().toString().substring(0, 8));
    try (IdempotencyStore store =
        StoreBuilder.postgres(TestDatabase.jdbcUrl(), TestDatabase.user(), TestDatabase.password())
            .tableName(table)
            .poolSize(2)
            .build()) {
      IdempotencyKey key = new IdempotencyKey("s", "k");
      ClaimResult claim = store.claim(key, IdempotencyStoreContract.fingerprint("a"));
      assertThat(claim).isInstanceOf(ClaimResult.Acquired.class);
      assertThat(
              store.complete(
                  key,
                  ((ClaimResult.Acquired) claim).token(),
                  IdempotencyStoreContract.response("ok")))
          .isTrue();
      assertThat(store.claim(key, IdempotencyStoreContract.fingerprint("a")))
          .isInstanceOf(ClaimResult.Completed.class);
    }
  }

  @Test
  void build_memoryWithCacheMaxBytes_evictsCompletedKeysPastTheBudget() {
    try (IdempotencyStore bounded =
            StoreBuilder.memory().cacheMaxBytes(16 * 1024).purgeInterval(Duration.ZERO).build();
        IdempotencyStore byDefault = StoreBuilder.memory().purgeInterval(Duration.ZERO).build()) {
      for (IdempotencyStore store : java.util.List.of(bounded, byDefault)) {
        for (int i = 0; i < 200; i++) {
          IdempotencyKey key = new IdempotencyKey("s", "k" + i);
          ClaimResult.Acquired claim =
              (ClaimResult.Acquired) store.claim(key, IdempotencyStoreContract.fingerprint("a"));
          store.complete(key, claim.token(),
              new StoredResponse(201, java.util.List.of(), new byte[1024], true));
        }
        store.purgeExpired();
      }

      assertThat(completedKeys(bounded, 200)).isBetween(1, 16);
      assertThat(completedKeys(byDefault, 200)).isEqualTo(200);
    }
  }

  private static int completedKeys(IdempotencyStore store, int keys) {
    int completed = 0;
    for (int i = 0; i < keys; i++) {
      if (store.claim(new IdempotencyKey("s", "k" + i), IdempotencyStoreContract.fingerprint("a"))
          instanceof ClaimResult.Completed) {
        completed++;
      }
    }
    return completed;
  }

  @Test
  void build_databaseDownAtStart_failsNamingTheTable() {
    assertThatThrownBy(
            () ->
                StoreBuilder.postgres("jdbc:postgresql://127.0.0.1:1/none", "u", "p")
                    .connectTimeout(Duration.ofMillis(500))
                    .build())
        .isInstanceOf(StoreUnavailableException.class)
        .hasMessageStartingWith("could not migrate public.idempotency_keys");
  }

  @Test
  void setters_badValues_failWithTheNumbers() {
    assertThatThrownBy(() -> StoreBuilder.memory().poolSize(0))
        .hasMessage("pool size must be at least 1, was 0");
    assertThatThrownBy(() -> StoreBuilder.memory().ttl(Duration.ZERO))
        .hasMessage("ttl must be positive, was PT0S");
    assertThatThrownBy(() -> StoreBuilder.memory().connectTimeout(Duration.ofMillis(100)))
        .hasMessage("connect timeout must be at least 250ms, was 100ms");
    assertThatThrownBy(() -> StoreBuilder.postgres("jdbc:mysql://x/y", null, null))
        .hasMessage("JDBC URL must start with jdbc:postgresql:, was 'jdbc:mysql://x/y'");
  }

  @Test
  void store_databaseStoppedAndStarted_failsFastThenRecoversWithoutRestart(@TempDir Path dir)
      throws Exception {
    int port;
    try (ServerSocket socket = new ServerSocket(0)) {
      port = socket.getLocalPort();
    }
    Path data = Files.createDirectories(dir.resolve("data"));
    EmbeddedPostgres postgres = start(data, port);
    IdempotencyKey done = new IdempotencyKey("s", "completed-before-outage");
    try (IdempotencyStore store =
        StoreBuilder.postgres(postgres.getJdbcUrl("postgres", "postgres"), "postgres", "postgres")
            .cacheMaxBytes(0)
            .connectTimeout(Duration.ofMillis(500))
            .build()) {
      long token =
          ((ClaimResult.Acquired) store.claim(done, IdempotencyStoreContract.fingerprint("a")))
              .token();
      store.complete(done, token, IdempotencyStoreContract.response("kept"));

      postgres.close();
      long start = System.nanoTime();
      assertThatThrownBy(
              () -> store.claim(new IdempotencyKey("s", "new"), IdempotencyStoreContract.fingerprint("a")))
          .isInstanceOf(StoreUnavailableException.class);
      // Not a speed assertion: it proves the pool's 30 s default wait is not in play.
      assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(10));

      postgres = start(data, port);
      ClaimResult replay = null;
      for (int attempt = 0; attempt < 50 && replay == null; attempt++) {
        try {
          replay = store.claim(done, IdempotencyStoreContract.fingerprint("a"));
        } catch (StoreUnavailableException stillDown) {
          Thread.sleep(200);
        }
      }
      assertThat(replay).isInstanceOf(ClaimResult.Completed.class);
      assertThat(((ClaimResult.Completed) replay).response())
          .isEqualTo(IdempotencyStoreContract.response("kept"));
    } finally {
      postgres.close();
    }
  }

  private static EmbeddedPostgres start(Path data, int port) throws Exception {
    return EmbeddedPostgres.builder()
        .setDataDirectory(data)
        .setCleanDataDirectory(false)
        .setPort(port)
        .start();
  }
}
