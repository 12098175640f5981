package io.idemkey.store;

import io.idemkey.migrations.TableName;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.concurrent.Executor;
import javax.sql.DataSource;

/**
 * The keys of a table, opaque or sequence (SPEC §13), as recorded in its settings table (the V5
 * migration), which every store on the table must use: a node of opaque keys purges without
 * raising floors, and one of sequence keys refuses keys that the other ran.
 *
 * <p>The first store to start on a table records its own keys. A table from before the record
 * existed is recorded from what it holds: floors mean sequence keys (only their purge writes
 * them), and a key that is not a sequence number among its first {@value #SAMPLE} rows means
 * opaque keys; a table that holds neither takes the starting store's keys. Two stores of
 * different keys starting at once on a new table both insert; one insert wins, and the other
 * store reads it back and refuses.
 *
 * <p>Stateless and thread-safe.
 */
final class TableKeysMode {

  private static final String OPAQUE = "opaque";
  private static final String SEQUENCE = "sequence";
  /** Rows of an upgraded table looked at for a key that is not a sequence number. */
  private static final int SAMPLE = 1000;
  private static final Executor DIRECT = Runnable::run;
  private static final String UNDEFINED_TABLE = "42P01";

  private TableKeysMode() {}

  /**
   * Records {@code sequenceKeys} as the table's keys if none are recorded yet (or what the table
   * holds, see the class comment), and checks that they are the table's.
   *
   * @param timeout the bound on each statement
   * @throws KeysModeMismatchException if the table's keys are the other ones
   * @throws StoreUnavailableException if the database cannot be reached or the keys table does
   *     not exist
   * @throws MissingSettingsException if the keys table exists without its settings table
   */
  static void agree(
      DataSource dataSource, TableName table, boolean sequenceKeys, Duration timeout) {
    String mine = sequenceKeys ? SEQUENCE : OPAQUE;
    String recorded;
    String held = null;
    try (Connection connection = dataSource.getConnection()) {
      int previousTimeout = connection.getNetworkTimeout();
      connection.setNetworkTimeout(DIRECT, (int) Math.min(Integer.MAX_VALUE, timeout.toMillis()));
      try {
        if (!settingsTableExists(connection, table)) {
          throw new MissingSettingsException("table " + table + " has no "
              + table.schema() + "." + table.settingsTable() + ", where every node records its"
              + " keys: its V5 migration has not run. Let idemkey migrate it, or create it as"
              + " README \"The schema\" shows");
        }
        recorded = recorded(connection, table);
        if (recorded == null) {
          held = held(connection, table);
          record(connection, table, held != null ? held : mine);
          recorded = recorded(connection, table);
        }
        if (!connection.getAutoCommit()) {
          connection.commit();
        }
      } finally {
        if (!connection.isClosed()) {
          connection.setNetworkTimeout(DIRECT, previousTimeout);
        }
      }
      if (recorded == null) {
        throw new SQLException("the keys recorded a moment ago are not there");
      }
    } catch (SQLException e) {
      throw new StoreUnavailableException("could not read or record the keys of " + table
          + " in " + table.schema() + "." + table.settingsTable() + ": " + e.getMessage(), e);
    }
    if (!mine.equals(recorded)) {
      throw new KeysModeMismatchException(table, SEQUENCE.equals(recorded),
          mismatch(table, mine, recorded, recorded.equals(held)));
    }
  }

  private static String mismatch(TableName table, String mine, String recorded, boolean held) {
    String t = table.toString();
    return "this node's keys are " + mine + ", but table " + t + " is used with " + recorded
        + " keys (" + (held ? "it holds " + recorded + " keys" : "recorded by the first node on it")
        + "); every node on one table must use the same keys. Start this node with " + recorded
        + " keys, or give it a table of its own (another table name). To move this table to "
        + mine + " keys: stop every node on it, wait until no request needs its keys any more"
        + " (the ttl), then empty it (TRUNCATE " + t + ", " + t + "_steps, " + t + "_floors, "
        + t + "_settings) and start the nodes with " + mine + " keys";
  }

  /**
   * The keys table exists and its settings table does not: migrations run by hand that stopped
   * before V5. Unlike a database that is away (or a table not created yet), this will not mend
   * itself, so it fails the start.
   */
  static final class MissingSettingsException extends IdempotencyException {
    MissingSettingsException(String message) {
      super(message);
    }
  }

  /**
   * Whether the settings table exists; false only when the keys table does and it does not.
   *
   * @throws SQLException if the keys table does not exist either, or the database fails
   */
  private static boolean settingsTableExists(Connection connection, TableName table)
      throws SQLException {
    try (PreparedStatement statement = connection.prepareStatement(
        "SELECT to_regclass(?) IS NOT NULL, to_regclass(?) IS NOT NULL")) {
      statement.setString(1, table.qualifiedTable());
      statement.setString(2, table.qualifiedSettingsTable());
      try (ResultSet row = statement.executeQuery()) {
        row.next();
        if (!row.getBoolean(1)) {
          throw new SQLException("table " + table + " does not exist", UNDEFINED_TABLE);
        }
        return row.getBoolean(2);
      }
    }
  }

  private static String recorded(Connection connection, TableName table) throws SQLException {
    try (PreparedStatement statement = connection.prepareStatement(
            "SELECT keys FROM " + table.qualifiedSettingsTable());
        ResultSet row = statement.executeQuery()) {
      return row.next() ? row.getString(1) : null;
    }
  }

  /** The keys that the table's rows show it was used with, or null when they show neither. */
  private static String held(Connection connection, TableName table) throws SQLException {
    try (PreparedStatement statement = connection.prepareStatement(
            "SELECT EXISTS (SELECT 1 FROM " + table.qualifiedFloorsTable() + "),"
                + " EXISTS (SELECT 1 FROM (SELECT idem_key FROM " + table.qualifiedTable()
                + "   LIMIT " + SAMPLE + ") k WHERE idem_key !~ '^(0|[1-9][0-9]{0,18})$')");
        ResultSet row = statement.executeQuery()) {
      row.next();
      if (row.getBoolean(1)) {
        return SEQUENCE; // floors are irreplaceable: they win over opaque leftovers
      }
      return row.getBoolean(2) ? OPAQUE : null;
    }
  }

  private static void record(Connection connection, TableName table, String keys)
      throws SQLException {
    try (PreparedStatement statement = connection.prepareStatement(
        "INSERT INTO " + table.qualifiedSettingsTable() + " (keys) VALUES (?)"
            + " ON CONFLICT (only_row) DO NOTHING")) {
      statement.setString(1, keys);
      statement.executeUpdate();
    }
    if (!connection.getAutoCommit()) {
      connection.commit();
    }
  }
}
