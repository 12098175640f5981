package io.idemkey.migrations;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import javax.sql.DataSource;
import org.flywaydb.core.Flyway;
import org.flywaydb.core.api.FlywayException;
import org.flywaydb.core.api.output.MigrateResult;

/**
 * The one entry point that creates or upgrades the idempotency keys table.
 *
 * <p>The migrations keep their own Flyway history table ({@link TableName#historyTable()}), so they
 * never collide with a host application that runs Flyway on the same schema. A schema that already
 * holds other tables is baselined at version 0, so every idemkey migration still runs.
 *
 * <p>Before Flyway runs, the target is checked: a table of that name that is not idemkey's (one
 * of the application's own, say) fails the call before anything is created, not even the history
 * table or the schema.
 *
 * <p>Thread-safe: it holds no state. Concurrent calls from several nodes are serialised by
 * Flyway's own lock on the history table.
 */
public final class Migrations {

  private static final String LOCATION = "classpath:io/idemkey/migrations/db";

  /** Columns that every version of the keys table has (V1): a table without them is not ours. */
  private static final List<String> KEY_COLUMNS =
      List.of("scope", "idem_key", "fingerprint", "state", "token", "expires_at");

  private static final String RELATIONS_SQL =
      "SELECT c.relname FROM pg_catalog.pg_class c"
          + " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
          + " WHERE n.nspname = ? AND c.relname = ANY (?)";

  private static final String COLUMNS_SQL =
      "SELECT a.attname FROM pg_catalog.pg_attribute a"
          + " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
          + " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
          + " WHERE n.nspname = ? AND c.relname = ? AND a.attnum > 0 AND NOT a.attisdropped";

  private Migrations() {}

  /**
   * Migrates {@code dataSource} so that {@code tableName} exists at the latest version.
   *
   * @param dataSource a PostgreSQL data source whose user may create the schema and table
   * @param tableName where the keys live
   * @return the number of migrations applied by this call (0 when already up to date)
   * @throws ForeignTableException if the table, or a relation the migrations would create, already
   *     exists and is not idemkey's; nothing is created then
   * @throws FlywayException if the database cannot be reached or a migration fails
   */
  public static int migrate(DataSource dataSource, TableName tableName) {
    requireOursOrAbsent(dataSource, tableName);
    MigrateResult result =
        Flyway.configure(Migrations.class.getClassLoader())
            .dataSource(dataSource)
            .schemas(tableName.schema())
            .defaultSchema(tableName.schema())
            .createSchemas(true)
            .table(tableName.historyTable())
            .baselineOnMigrate(true)
            .baselineVersion("0")
            .locations(LOCATION)
            .placeholders(Map.of("schema", tableName.schema(), "table", tableName.table()))
            .load()
            .migrate();
    return result.migrationsExecuted;
  }

  /**
   * Fails if {@code tableName} exists but is not an idemkey keys table: it must have both its
   * history table and the keys columns. The columns, not the history rows, decide, because a node
   * migrating at this instant commits the table before Flyway records the migration.
   */
  private static void requireOursOrAbsent(DataSource dataSource, TableName tableName) {
    String history = tableName.historyTable();
    // The relations that the migrations create besides the table (V1, V3 to V6): a name
    // already taken would fail them.
    String sequence = tableName.table() + "_token_seq";
    String index = tableName.table() + "_expires_at_idx";
    String purgeIndex = tableName.table() + "_created_at_idx";
    String steps = tableName.table() + "_steps";
    String stepsIndex = tableName.table() + "_steps_expires_at_idx";
    String floors = tableName.floorsTable();
    String settings = tableName.settingsTable();
    try (Connection connection = dataSource.getConnection()) {
      Set<String> existing =
          names(connection, RELATIONS_SQL, tableName.schema(),
              connection.createArrayOf("text", new String[] {tableName.table(), history, sequence,
                  index, purgeIndex, steps, stepsIndex, floors, settings}));
      if (existing.contains(tableName.table())) {
        if (!existing.contains(history)) {
          throw foreign(tableName, "it has no idemkey migration history table "
              + tableName.schema() + "." + history);
        }
        Set<String> columns = names(connection, COLUMNS_SQL, tableName.schema(), tableName.table());
        if (!columns.containsAll(KEY_COLUMNS)) {
          throw foreign(tableName, "it lacks idemkey's columns " + String.join(", ", KEY_COLUMNS));
        }
      } else {
        for (String name : List.of(sequence, index, steps, stepsIndex, floors, settings)) {
          if (existing.contains(name)) {
            throw new ForeignTableException(tableName, "cannot create the idemkey table "
                + tableName + ": " + tableName.schema() + "." + name
                + ", which it needs, already exists and is not idemkey's. Nothing was created;"
                + " choose another table name");
          }
        }
      }
    } catch (SQLException e) {
      throw new FlywayException("could not inspect " + tableName + ": " + e.getMessage(), e);
    }
  }

  private static ForeignTableException foreign(TableName tableName, String why) {
    return new ForeignTableException(tableName, "table " + tableName
        + " already exists and is not an idemkey table (" + why + "). Nothing was created;"
        + " choose another table name for the idempotency keys");
  }

  /** The names that {@code sql} returns for the schema and a name (or array of names). */
  private static Set<String> names(Connection connection, String sql, String schema, Object name)
      throws SQLException {
    try (PreparedStatement statement = connection.prepareStatement(sql)) {
      statement.setString(1, schema);
      statement.setObject(2, name);
      Set<String> names = new HashSet<>();
      try (ResultSet rows = statement.executeQuery()) {
        while (rows.next()) {
          names.add(rows.getString(1));
        }
      }
      return names;
    }
  }
}
