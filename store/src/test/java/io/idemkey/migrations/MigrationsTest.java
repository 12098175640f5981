package io.idemkey.migrations;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.idemkey.store.TestDatabase;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.flywaydb.core.Flyway;
import org.junit.jupiter.api.Test;

/** The migrations against a real PostgreSQL (here because the store module owns the test database). */
class MigrationsTest {

  static String unique(String prefix) {
    return prefix + UUID.randomUUID().toString().replace("-", "").substring(0, 10);
  }

  static List<String> query(String sql) throws SQLException {
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement();
        ResultSet rows = statement.executeQuery(sql)) {
      List<String> values = new ArrayList<>();
      while (rows.next()) {
        values.add(rows.getString(1));
      }
      return values;
    }
  }

  static void execute(String... statements) throws SQLException {
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement()) {
      for (String sql : statements) {
        statement.execute(sql);
      }
    }
  }

  /**
   * The migrations a new table gets: V1 (keys), V3 (steps), V4 (sequence keys' floors), V5 (the
   * settings every node must agree on), V6 (the mark of a waited key).
   */
  static final int MIGRATIONS = 5;

  static List<String> relations(String schema) throws SQLException {
    return query("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        + " WHERE n.nspname = '" + schema + "' ORDER BY c.relname");
  }

  @Test
  void migrate_newSchema_createsSchemaTableSequenceAndOwnHistory() throws Exception {
    TableName table = new TableName(unique("s_"), "keys");

    assertThat(Migrations.migrate(TestDatabase.dataSource(), table)).isEqualTo(MIGRATIONS);

    assertThat(query("SELECT table_name FROM information_schema.tables WHERE table_schema = '"
            + table.schema() + "' ORDER BY table_name"))
        .containsExactly("keys", "keys_floors", "keys_schema_history", "keys_settings",
            "keys_steps");
    assertThat(query("SELECT sequence_name FROM information_schema.sequences"
            + " WHERE sequence_schema = '" + table.schema() + "'"))
        .containsExactly("keys_token_seq");
  }

  @Test
  void migrate_secondTime_appliesNothing() {
    TableName table = new TableName("public", unique("t_"));
    Migrations.migrate(TestDatabase.dataSource(), table);

    assertThat(Migrations.migrate(TestDatabase.dataSource(), table)).isZero();
  }

  @Test
  void migrate_createsOnlyThePrimaryKeyAndPurgeIndexes() throws Exception {
    TableName table = new TableName(unique("s_"), "keys");
    Migrations.migrate(TestDatabase.dataSource(), table);

    assertThat(query("SELECT indexdef FROM pg_indexes WHERE schemaname = '" + table.schema()
            + "' AND tablename = 'keys' ORDER BY indexname"))
        .hasSize(2)
        .anySatisfy(index -> assertThat(index).contains("(created_at)"))
        .anySatisfy(index -> assertThat(index).contains("(scope, idem_key)"));
  }

  @Test
  void migrate_besideHostApplicationFlyway_neitherHistoryCollides() throws Exception {
    String schema = unique("host_");
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement()) {
      statement.execute("CREATE SCHEMA " + schema);
      statement.execute("CREATE TABLE " + schema + ".orders (id bigint PRIMARY KEY)");
    }
    // The host application's own Flyway, with its default history table, in the same schema.
    Flyway.configure()
        .dataSource(TestDatabase.dataSource())
        .schemas(schema)
        .baselineOnMigrate(true)
        .locations("classpath:no/such/location")
        .load()
        .migrate();

    Migrations.migrate(TestDatabase.dataSource(), new TableName(schema, "idempotency_keys"));
    Migrations.migrate(TestDatabase.dataSource(), new TableName(schema, "other_keys"));

    assertThat(query("SELECT table_name FROM information_schema.tables WHERE table_schema = '"
            + schema + "' ORDER BY table_name"))
        .containsExactly(
            "flyway_schema_history",
            "idempotency_keys",
            "idempotency_keys_floors",
            "idempotency_keys_schema_history",
            "idempotency_keys_settings",
            "idempotency_keys_steps",
            "orders",
            "other_keys",
            "other_keys_floors",
            "other_keys_schema_history",
            "other_keys_settings",
            "other_keys_steps");
  }

  @Test
  void migrate_tableOfTheApplication_failsSayingSoAndCreatesNothing() throws Exception {
    String schema = unique("app_");
    execute("CREATE SCHEMA " + schema,
        "CREATE TABLE " + schema + ".payments (id bigint PRIMARY KEY, amount bigint)");
    List<String> before = relations(schema);

    assertThatThrownBy(
            () -> Migrations.migrate(TestDatabase.dataSource(), new TableName(schema, "payments")))
        .isInstanceOf(ForeignTableException.class)
        .hasMessage("table " + schema + ".payments already exists and is not an idemkey table"
            + " (it has no idemkey migration history table " + schema + ".payments_schema_history)."
            + " Nothing was created; choose another table name for the idempotency keys");

    assertThat(relations(schema)).isEqualTo(before).doesNotContain("payments_schema_history");
  }

  @Test
  void migrate_tableOfTheApplicationBesideLeftoverHistory_failsAndCreatesNothing()
      throws Exception {
    // What an earlier version left behind after failing on the application's table.
    String schema = unique("app_");
    execute("CREATE SCHEMA " + schema,
        "CREATE TABLE " + schema + ".payments (id bigint PRIMARY KEY)",
        "CREATE TABLE " + schema + ".payments_schema_history (installed_rank int PRIMARY KEY)");
    List<String> before = relations(schema);

    assertThatThrownBy(
            () -> Migrations.migrate(TestDatabase.dataSource(), new TableName(schema, "payments")))
        .isInstanceOf(ForeignTableException.class)
        .hasMessageStartingWith("table " + schema + ".payments already exists and is not an"
            + " idemkey table (it lacks idemkey's columns");

    assertThat(relations(schema)).isEqualTo(before);
  }

  @Test
  void migrate_stepsTableNameTaken_failsAndCreatesNothing() throws Exception {
    String schema = unique("app_");
    execute("CREATE SCHEMA " + schema, "CREATE TABLE " + schema + ".keys_steps (id int)");

    assertThatThrownBy(
            () -> Migrations.migrate(TestDatabase.dataSource(), new TableName(schema, "keys")))
        .isInstanceOf(ForeignTableException.class)
        .hasMessageContaining(schema + ".keys_steps, which it needs, already exists");

    assertThat(relations(schema)).containsExactly("keys_steps");
  }

  @Test
  void migrate_tokenSequenceNameTaken_failsAndCreatesNothing() throws Exception {
    String schema = unique("app_");
    execute("CREATE SCHEMA " + schema, "CREATE SEQUENCE " + schema + ".keys_token_seq");

    assertThatThrownBy(
            () -> Migrations.migrate(TestDatabase.dataSource(), new TableName(schema, "keys")))
        .isInstanceOf(ForeignTableException.class)
        .hasMessageContaining(schema + ".keys_token_seq, which it needs, already exists");

    assertThat(relations(schema)).containsExactly("keys_token_seq");
  }

  @Test
  void migrate_floorsTableNameTaken_failsAndCreatesNothing() throws Exception {
    String schema = unique("app_");
    execute("CREATE SCHEMA " + schema, "CREATE TABLE " + schema + ".keys_floors (id int)");

    assertThatThrownBy(
            () -> Migrations.migrate(TestDatabase.dataSource(), new TableName(schema, "keys")))
        .isInstanceOf(ForeignTableException.class)
        .hasMessageContaining(schema + ".keys_floors, which it needs, already exists");

    assertThat(relations(schema)).containsExactly("keys_floors");
  }

  @Test
  void migrate_longestTableName_everyDerivedNameFits() throws Exception {
    String name = unique("l_");
    name = name + "x".repeat(TableName.MAX_TABLE_LENGTH - name.length());
    TableName table = new TableName("public", name);

    assertThat(Migrations.migrate(TestDatabase.dataSource(), table)).isEqualTo(MIGRATIONS);

    // PostgreSQL would have cut a name past 63 bytes silently: each must be there in full.
    assertThat(relations("public"))
        .contains(name, name + "_floors", name + "_floors_pkey", name + "_token_seq",
            name + "_created_at_idx", name + "_schema_history", name + "_steps",
            name + "_steps_expires_at_idx", name + "_settings", name + "_settings_pkey");
  }

  @Test
  void migrate_settingsTableNameTaken_failsAndCreatesNothing() throws Exception {
    String schema = unique("s_");
    execute("CREATE SCHEMA " + schema, "CREATE TABLE " + schema + ".keys_settings (id int)");

    assertThatThrownBy(
            () -> Migrations.migrate(TestDatabase.dataSource(), new TableName(schema, "keys")))
        .isInstanceOf(ForeignTableException.class)
        .hasMessageContaining(schema + ".keys_settings, which it needs, already exists");

    assertThat(relations(schema)).containsExactly("keys_settings");
  }

  @Test
  void migrate_manyNodesAtOnceOnANewTable_allSucceed() throws Exception {
    // A node that checks while another is migrating sees our table before its history row.
    int nodes = 6;
    ExecutorService pool = Executors.newFixedThreadPool(nodes);
    try {
      for (int round = 0; round < 5; round++) {
        TableName table = new TableName("public", unique("race_"));
        CyclicBarrier start = new CyclicBarrier(nodes);
        List<Future<Integer>> results = new ArrayList<>();
        for (int i = 0; i < nodes; i++) {
          results.add(pool.submit(() -> {
            start.await();
            return Migrations.migrate(TestDatabase.dataSource(), table);
          }));
        }
        int applied = 0;
        for (Future<Integer> result : results) {
          applied += result.get();
        }
        assertThat(applied).as(table.toString()).isEqualTo(MIGRATIONS);
      }
    } finally {
      pool.shutdownNow();
    }
  }
}
