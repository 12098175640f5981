package io.idemkey.store;

import static io.idemkey.store.PostgresStoreHardeningTest.fingerprint;
import static io.idemkey.store.PostgresStoreHardeningTest.key;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.migrations.TableName;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.SQLTransientConnectionException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The store's connections: a known-down database answered at once, and a busy pool not. */
class StoreConnectionsTest {

  private static final Duration TIMEOUT = Duration.ofSeconds(2);

  private static IdempotencyStore storeOn(javax.sql.DataSource source, TableName table) {
    return StoreBuilder.postgres(source).tableName(table).migrate(false).cacheMaxBytes(0)
        .purgeInterval(Duration.ZERO).connectTimeout(TIMEOUT).build();
  }

  /**
   * Regression (issue 22): with the database gone, every request waited its own connect-timeout
   * for it. Once one call found it unreachable, the next ones fail without asking for a
   * connection, until a probe (at most one per bound) finds it back; then calls are served.
   */
  @Test
  void claim_databaseFoundUnreachable_nextCallsFailAtOnceAndAProbeFindsItBack() throws Exception {
    TableName table = TestDatabase.freshTable();
    SwitchableDataSource database = new SwitchableDataSource(TestDatabase.dataSource());
    try (IdempotencyStore store = storeOn(database, table)) {
      assertThat(store.claim(key(), fingerprint("a"))).isInstanceOf(ClaimResult.Acquired.class);
      assertThat(store.knownDown()).isFalse();

      database.failFromNow();
      assertThatThrownBy(() -> store.claim(key(), fingerprint("a")))
          .isInstanceOf(StoreUnavailableException.class);
      assertThat(store.knownDown()).isTrue();
      int asked = database.refused();
      for (int i = 0; i < 20; i++) {
        assertThatThrownBy(() -> store.claim(key(), fingerprint("a")))
            .isInstanceOf(StoreUnavailableException.class);
      }
      // At most one probe can have run meanwhile (one per bound of 2 s), however slow the
      // machine; without the breaker, all twenty would have asked.
      assertThat(database.refused() - asked).isLessThanOrEqualTo(1);

      database.serveAgain();
      ClaimResult back = null;
      long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
      while (back == null && System.nanoTime() < deadline) {
        try {
          back = store.claim(key(), fingerprint("b"));
        } catch (StoreUnavailableException e) {
          Thread.onSpinWait();
        }
      }
      assertThat(back).isInstanceOf(ClaimResult.Acquired.class);
      assertThat(store.knownDown()).isFalse();
    }
  }

  /** A pool merely busy (every connection held by requests) is not a database that is away. */
  @Test
  void claim_poolExhaustedByRequests_isNotKnownDown() throws Exception {
    TableName table = TestDatabase.freshTable();
    try (HikariDataSource pool = TestDatabase.newPool(2);
        IdempotencyStore store = storeOn(pool, table)) {
      List<Connection> held = new ArrayList<>();
      try {
        held.add(pool.getConnection());
        held.add(pool.getConnection());
        assertThatThrownBy(() -> store.claim(key(), fingerprint("a")))
            .isInstanceOf(StoreUnavailableException.class);
        assertThat(store.knownDown()).isFalse();
      } finally {
        for (Connection connection : held) {
          connection.close();
        }
      }
      assertThat(store.claim(key(), fingerprint("a"))).isInstanceOf(ClaimResult.Acquired.class);
    }
  }

  @Test
  void unreachable_poolTimeoutCausedByAConnectionFailure_isUnreachable() {
    SQLException refused = new SQLException("Connection refused", "08001");
    assertThat(StoreConnections.unreachable(
        new SQLTransientConnectionException("pool - request timed out", "08001", refused)))
        .isTrue();
    assertThat(StoreConnections.unreachable(
        new SQLTransientConnectionException("pool - request timed out")))
        .as("a busy pool").isFalse();
    assertThat(StoreConnections.unreachable(new SQLException("shutting down", "57P01"))).isTrue();
    assertThat(StoreConnections.unreachable(new SQLException("duplicate key", "23505"))).isFalse();
  }

  /**
   * Regression (issue 22): the step store took its connections with the data source's own wait
   * (a handed-in HikariCP pool's 30 s), where every key call fails within the bound.
   */
  @Test
  void stepFind_poolExhausted_failsWithinTheBoundAsClaimsDo() throws Exception {
    TableName table = TestDatabase.freshTable();
    try (HikariDataSource pool = TestDatabase.newPool(2); // its own wait: 30 s (Hikari default)
        IdempotencyStore store = StoreBuilder.postgres(pool).tableName(table).migrate(false)
            .cacheMaxBytes(0).purgeInterval(Duration.ZERO).connectTimeout(Duration.ofSeconds(1))
            .build()) {
      IdempotencyKey key = key();
      assertThat(store.claim(key, fingerprint("a"))).isInstanceOf(ClaimResult.Acquired.class);
      List<Connection> held = new ArrayList<>();
      try {
        // Requests' transactions hold every connection of the pool.
        held.add(pool.getConnection());
        held.add(pool.getConnection());

        long claimStarted = System.nanoTime();
        assertThatThrownBy(() -> store.claim(
            key(), fingerprint("a")))
            .isInstanceOf(StoreUnavailableException.class);
        Duration claimWait = Duration.ofNanos(System.nanoTime() - claimStarted);

        long stepStarted = System.nanoTime();
        assertThatThrownBy(() -> store.steps().find(key, fingerprint("a"), "charge"))
            .isInstanceOf(StoreUnavailableException.class);
        Duration stepWait = Duration.ofNanos(System.nanoTime() - stepStarted);

        assertThat(claimWait).isLessThan(Duration.ofSeconds(15));
        assertThat(stepWait).as("a step's wait, bounded as a claim's is (the pool's own is 30 s)")
            .isLessThan(Duration.ofSeconds(15));
      } finally {
        for (Connection connection : held) {
          connection.close();
        }
      }
    }
  }
}
