package io.idemkey.store;

import io.idemkey.migrations.TableName;

/**
 * A store's keys (opaque or sequence: {@link StoreBuilder#sequenceKeys}) differ from those of the
 * table it is on, as the table's first node recorded them (SPEC §13). Every node on one table
 * must use the same keys: a retry cannot help, and the store was not started. The message says
 * how to move a table to the other keys.
 */
public final class KeysModeMismatchException extends IdempotencyException {

  private final TableName tableName;
  private final boolean tableSequenceKeys;

  KeysModeMismatchException(TableName tableName, boolean tableSequenceKeys, String message) {
    super(message);
    this.tableName = tableName;
    this.tableSequenceKeys = tableSequenceKeys;
  }

  /** The table whose keys differ. */
  public TableName tableName() {
    return tableName;
  }

  /** Whether the table's keys are sequence keys (else opaque). */
  public boolean tableSequenceKeys() {
    return tableSequenceKeys;
  }
}
