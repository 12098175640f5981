package io.idemkey.migrations;

/**
 * The keys table, or its Flyway history table, already exists and is not idemkey's: it belongs to
 * the application or to something else in the database. Nothing was created or changed; the cure
 * is another table (or schema) name, not a retry.
 */
public final class ForeignTableException extends IllegalStateException {

  private final TableName tableName;

  ForeignTableException(TableName tableName, String message) {
    super(message);
    this.tableName = tableName;
  }

  /** The table name that is taken. */
  public TableName tableName() {
    return tableName;
  }
}
