package io.idemkey.migrations;

import java.util.regex.Pattern;

/**
 * The schema and table that hold idempotency keys, validated as plain SQL identifiers.
 *
 * <p>Both names must be lower-case identifiers ({@code [a-z_][a-z0-9_]*}) so that they mean the
 * same thing quoted and unquoted; they are always quoted when written into SQL. The table name is
 * at most {@value #MAX_TABLE_LENGTH} characters because the names derived from it (history table,
 * token sequence, purge index, steps table and its index, floors table and its primary key,
 * settings table and its primary key; the longest, the steps' index, at 21 more) must fit PostgreSQL's 63-byte limit. The schema may not
 * be one of PostgreSQL's own: {@code information_schema}, or any name starting with {@code pg_}
 * (reserved for the system: {@code pg_catalog}, {@code pg_toast}, ...).
 *
 * <p>Immutable and thread-safe.
 *
 * @param schema the schema, e.g. {@code public}
 * @param table the table, e.g. {@code idempotency_keys}
 */
public record TableName(String schema, String table) {

  /** The longest accepted table name. */
  public static final int MAX_TABLE_LENGTH = 40;

  private static final int MAX_IDENTIFIER_LENGTH = 63;
  private static final Pattern IDENTIFIER = Pattern.compile("[a-z_][a-z0-9_]*");

  /** The default location: {@code public.idempotency_keys}. */
  public static final TableName DEFAULT = new TableName("public", "idempotency_keys");

  /**
   * Validates both names.
   *
   * @throws IllegalArgumentException if either name is not a lower-case SQL identifier, or is too
   *     long, or the schema is a system schema
   */
  public TableName {
    requireIdentifier("schema", schema, MAX_IDENTIFIER_LENGTH);
    requireIdentifier("table", table, MAX_TABLE_LENGTH);
    if (schema.equals("information_schema") || schema.startsWith("pg_")) {
      throw new IllegalArgumentException(
          "schema name '" + schema + "' is a PostgreSQL system schema (information_schema and"
              + " every name starting with pg_ are reserved): use a schema of your own");
    }
  }

  /** The quoted, schema-qualified table name, safe to write into SQL. */
  public String qualifiedTable() {
    return quote(schema) + "." + quote(table);
  }

  /** The quoted, schema-qualified name of the sequence that issues fencing tokens. */
  public String qualifiedTokenSequence() {
    return quote(schema) + "." + quote(table + "_token_seq");
  }

  /** The quoted, schema-qualified name of the table of step results (SPEC §12). */
  public String qualifiedStepsTable() {
    return quote(schema) + "." + quote(table + "_steps");
  }

  /** The quoted, schema-qualified name of the table of sequence-key floors (SPEC §13). */
  public String qualifiedFloorsTable() {
    return quote(schema) + "." + quote(floorsTable());
  }

  /** The unquoted name of the table of sequence-key floors, in the same schema. */
  public String floorsTable() {
    return table + "_floors";
  }

  /**
   * The quoted, schema-qualified name of the one-row table of what every node on this table must
   * agree on: its keys, opaque or sequence (SPEC §13).
   */
  public String qualifiedSettingsTable() {
    return quote(schema) + "." + quote(settingsTable());
  }

  /** The unquoted name of the table of settings every node must agree on, in the same schema. */
  public String settingsTable() {
    return table + "_settings";
  }

  /** The unquoted name of this table's own Flyway history table, in the same schema. */
  public String historyTable() {
    return table + "_schema_history";
  }

  @Override
  public String toString() {
    return schema + "." + table;
  }

  private static String quote(String identifier) {
    return '"' + identifier + '"';
  }

  private static void requireIdentifier(String what, String name, int maxLength) {
    if (name == null || name.isEmpty()) {
      throw new IllegalArgumentException(what + " name must not be empty");
    }
    if (name.length() > maxLength) {
      throw new IllegalArgumentException(
          what + " name '" + name + "' is " + name.length() + " characters; at most " + maxLength
              + " allowed");
    }
    if (!IDENTIFIER.matcher(name).matches()) {
      throw new IllegalArgumentException(
          what + " name '" + name
              + "' is not a plain SQL identifier: use lower-case letters, digits and '_', not"
              + " starting with a digit");
    }
  }
}
