package io.idemkey.store;

import static io.idemkey.store.IdempotencyStoreContract.fingerprint;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.idemkey.migrations.TableName;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import javax.sql.DataSource;
import org.junit.jupiter.api.Test;

/**
 * Issue 23, item 1: nodes of opaque and of sequence keys on one table (SPEC §13). The opaque node
 * purged without raising floors, and late duplicates of sequence keys ran again. The table
 * records its keys; a node whose keys differ refuses to start and says how to move.
 */
class KeysModeTest {

  final TableName table = TestDatabase.freshTable();

  IdempotencyStore node(DataSource dataSource, boolean sequenceKeys) {
    return StoreBuilder.postgres(dataSource)
        .tableName(table)
        .migrate(false)
        .sequenceKeys(sequenceKeys)
        .purgeInterval(Duration.ZERO)
        .build();
  }

  IdempotencyStore node(boolean sequenceKeys) {
    return node(TestDatabase.dataSource(), sequenceKeys);
  }

  static void execute(String sql) throws SQLException {
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement()) {
      statement.execute(sql);
    }
  }

  @Test
  void build_sequenceNodeOnTableOfOpaqueNode_refusesSayingHowToMove() {
    try (IdempotencyStore opaque = node(false)) {
      assertThatThrownBy(() -> node(true))
          .isInstanceOf(KeysModeMismatchException.class)
          .hasMessageStartingWith("this node's keys are sequence, but table " + table
              + " is used with opaque keys (recorded by the first node on it); every node on one"
              + " table must use the same keys")
          .hasMessageContaining("give it a table of its own")
          .hasMessageContaining("TRUNCATE " + table + ", " + table + "_steps, " + table
              + "_floors, " + table + "_settings")
          .satisfies(e -> {
            KeysModeMismatchException mismatch = (KeysModeMismatchException) e;
            assertThat(mismatch.tableName()).isEqualTo(table);
            assertThat(mismatch.tableSequenceKeys()).isFalse();
          });

      // The node already there goes on.
      IdempotencyKey key = new IdempotencyKey("s", UUID.randomUUID().toString());
      assertThat(opaque.claim(key, fingerprint("a"))).isInstanceOf(ClaimResult.Acquired.class);
    }
  }

  @Test
  void build_opaqueNodeOnTableOfSequenceNode_refuses() {
    try (IdempotencyStore sequence = node(true)) {
      assertThatThrownBy(() -> node(false))
          .isInstanceOf(KeysModeMismatchException.class)
          .hasMessageStartingWith("this node's keys are opaque, but table " + table
              + " is used with sequence keys");
    }
  }

  @Test
  void build_sameKeysAsTheTable_starts() {
    try (IdempotencyStore first = node(true);
        IdempotencyStore second = node(true)) {
      IdempotencyKey key = new IdempotencyKey("s", "1");
      assertThat(first.claim(key, fingerprint("a"))).isInstanceOf(ClaimResult.Acquired.class);
      assertThat(second.claim(key, fingerprint("a"))).isInstanceOf(ClaimResult.InProgress.class);
    }
  }

  @Test
  void build_nodesOfBothKeysAtOnceOnANewTable_onlyOneKindStarts() throws Exception {
    int nodes = 6;
    ExecutorService pool = Executors.newFixedThreadPool(nodes);
    try {
      for (int round = 0; round < 5; round++) {
        TableName fresh = TestDatabase.freshTable();
        CyclicBarrier start = new CyclicBarrier(nodes);
        List<Future<IdempotencyStore>> builds = new ArrayList<>();
        for (int i = 0; i < nodes; i++) {
          boolean sequenceKeys = i % 2 == 0;
          builds.add(pool.submit(() -> {
            start.await();
            return StoreBuilder.postgres(TestDatabase.dataSource()).tableName(fresh)
                .migrate(false).sequenceKeys(sequenceKeys).purgeInterval(Duration.ZERO)
                .build();
          }));
        }
        int started = 0;
        int refused = 0;
        for (Future<IdempotencyStore> build : builds) {
          try {
            build.get().close();
            started++;
          } catch (ExecutionException e) {
            assertThat(e.getCause()).isInstanceOf(KeysModeMismatchException.class);
            refused++;
          }
        }
        assertThat(started).as("round %d", round).isEqualTo(nodes / 2);
        assertThat(refused).as("round %d", round).isEqualTo(nodes / 2);
      }
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void build_tableFromBeforeTheRecordHoldingFloors_isSequenceAndRefusesOpaqueNode()
      throws Exception {
    execute("INSERT INTO " + table.qualifiedFloorsTable() + " VALUES ('client', 7)");

    assertThatThrownBy(() -> node(false))
        .isInstanceOf(KeysModeMismatchException.class)
        .hasMessageContaining("is used with sequence keys (it holds sequence keys)");
    node(true).close();
  }

  @Test
  void build_tableFromBeforeTheRecordHoldingOpaqueKeys_refusesSequenceNode() {
    // A node of a version that did not record its keys.
    try (IdempotencyStore old = new PostgresStore(TestDatabase.dataSource(), table, null,
        StoreBuilder.DEFAULT_TTL, StoreBuilder.DEFAULT_LEASE, 100, null)) {
      old.claim(new IdempotencyKey("s", UUID.randomUUID().toString()), fingerprint("a"));
    }

    assertThatThrownBy(() -> node(true))
        .isInstanceOf(KeysModeMismatchException.class)
        .hasMessageContaining("is used with opaque keys (it holds opaque keys)");
    node(false).close();
  }

  @Test
  void build_emptiedTableAsTheMessageSays_takesTheOtherKeys() throws Exception {
    try (IdempotencyStore opaque = node(false)) {
      opaque.claim(new IdempotencyKey("s", UUID.randomUUID().toString()), fingerprint("a"));
    }
    assertThatThrownBy(() -> node(true)).isInstanceOf(KeysModeMismatchException.class);

    execute("TRUNCATE " + table + ", " + table + "_steps, " + table + "_floors, " + table
        + "_settings");

    try (IdempotencyStore sequence = node(true)) {
      assertThat(sequence.claim(new IdempotencyKey("s", "1"), fingerprint("a")))
          .isInstanceOf(ClaimResult.Acquired.class);
    }
    assertThatThrownBy(() -> node(false)).isInstanceOf(KeysModeMismatchException.class);
  }

  @Test
  void build_withoutMigrationsWhileDatabaseDown_startsThenFirstClaimRefusesOtherKeys() {
    node(false).close();
    SwitchableDataSource database = new SwitchableDataSource(TestDatabase.dataSource());
    database.failFromNow();

    try (IdempotencyStore sequence = node(database, true)) {
      database.serveAgain();

      assertThatThrownBy(() -> sequence.claim(new IdempotencyKey("s", "1"), fingerprint("a")))
          .isInstanceOf(KeysModeMismatchException.class);
      assertThatThrownBy(sequence::purgeExpired).isInstanceOf(KeysModeMismatchException.class);
    }
  }

  @Test
  void build_keysTableWithoutItsSettingsTable_failsSayingV5HasNotRun() throws Exception {
    execute("DROP TABLE " + table.qualifiedSettingsTable());

    assertThatThrownBy(() -> node(false))
        .isInstanceOf(IdempotencyException.class)
        .hasMessageStartingWith("table " + table + " has no " + table + "_settings")
        .hasMessageContaining("its V5 migration has not run");
  }
}
