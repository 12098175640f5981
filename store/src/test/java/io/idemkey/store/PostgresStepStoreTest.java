package io.idemkey.store;

import static io.idemkey.store.IdempotencyStoreContract.fingerprint;
import static io.idemkey.store.IdempotencyStoreContract.key;
import static io.idemkey.store.IdempotencyStoreContract.tokenOf;
import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.migrations.TableName;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class PostgresStepStoreTest extends StepStoreContract {

  TableName table;

  @Override
  StoreBuilder freshStore() {
    table = TestDatabase.freshTable();
    return StoreBuilder.postgres(TestDatabase.dataSource()).tableName(table).cacheMaxBytes(0)
        // Long enough a bound on each statement for the save to wait for the take-over.
        .connectTimeout(Duration.ofSeconds(30));
  }

  @Test
  void save_takeOverCommitsWhileSaving_isRefused() throws Exception {
    IdempotencyKey key = key();
    long token = tokenOf(store.claim(key, fingerprint("a")));
    try (Connection takeOver = TestDatabase.dataSource().getConnection()) {
      // Another node takes the key over: its update holds the key's row until it commits.
      takeOver.setAutoCommit(false);
      try (PreparedStatement update = takeOver.prepareStatement(
          "UPDATE " + table.qualifiedTable() + " SET token = nextval('"
              + table.qualifiedTokenSequence() + "') WHERE scope = ? AND idem_key = ?")) {
        update.setString(1, key.scope());
        update.setString(2, key.key());
        assertThat(update.executeUpdate()).isEqualTo(1);
      }
      CompletableFuture<Boolean> saved = CompletableFuture.supplyAsync(
          () -> steps.save(key, token, fingerprint("a"), "charge", bytes("stale")));
      awaitWaitingOnALock();
      takeOver.commit();

      assertThat(saved.get(10, TimeUnit.SECONDS)).isFalse();
    }
    assertThat(steps.find(key, fingerprint("a"), "charge")).isEmpty();
  }

  /** Waits until a session waits for a lock in the steps' insert. */
  private void awaitWaitingOnALock() throws Exception {
    // Its own connection, outside any transaction: a transaction sees one snapshot of the stats.
    try (Connection own = TestDatabase.dataSource().getConnection();
        PreparedStatement waiting = own.prepareStatement(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            + " AND query LIKE ?")) {
      waiting.setString(1, "INSERT INTO " + table.qualifiedStepsTable() + "%");
      for (int i = 0; i < 500; i++) {
        try (ResultSet row = waiting.executeQuery()) {
          row.next();
          if (row.getLong(1) > 0) {
            return;
          }
        }
        Thread.sleep(10);
      }
    }
    throw new AssertionError("the save never waited for the take-over's lock");
  }
}
