package io.idemkey.migrations;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.store.TestDatabase;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
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

  @Test
  void migrate_newSchema_createsSchemaTableSequenceAndOwnHistory() throws Exception {
    TableName table = new TableName(unique("s_"), "keys");

    assertThat(Migrations.migrate(TestDatabase.dataSource(), table)).isEqualTo(1);

    assertThat(query("SELECT table_name FROM information_schema.tables WHERE table_schema = '"
            + table.schema() + "' ORDER BY table_name"))
        .containsExactly("keys", "keys_schema_history");
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
        .anySatisfy(index -> assertThat(index).contains("(expires_at)"))
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
            "idempotency_keys_schema_history",
            "orders",
            "other_keys",
            "other_keys_schema_history");
  }
}
