package io.idemkey.migrations;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

class TableNameTest {

  @Test
  void qualifiedNames_defaultTable_areQuoted() {
    assertThat(TableName.DEFAULT.qualifiedTable()).isEqualTo("\"public\".\"idempotency_keys\"");
    assertThat(TableName.DEFAULT.qualifiedTokenSequence())
        .isEqualTo("\"public\".\"idempotency_keys_token_seq\"");
    assertThat(TableName.DEFAULT.historyTable()).isEqualTo("idempotency_keys_schema_history");
  }

  @ParameterizedTest
  @ValueSource(strings = {"", "Keys", "1keys", "keys;drop table x", "ke\"ys", "keys-x", "k eys"})
  void constructor_badTable_failsNamingTable(String bad) {
    assertThatThrownBy(() -> new TableName("public", bad))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageStartingWith("table name");
  }

  @Test
  void constructor_badSchema_failsNamingSchema() {
    assertThatThrownBy(() -> new TableName("pub lic", "keys"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("schema name 'pub lic' is not a plain SQL identifier");
    assertThatThrownBy(() -> new TableName(null, "keys"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("schema name must not be empty");
  }

  @ParameterizedTest
  @ValueSource(strings = {"information_schema", "pg_catalog", "pg_toast", "pg_temp_1", "pg_mine"})
  void constructor_systemSchema_failsSayingItIsReserved(String schema) {
    assertThatThrownBy(() -> new TableName(schema, "keys"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("schema name '" + schema + "' is a PostgreSQL system schema"
            + " (information_schema and every name starting with pg_ are reserved): use a schema"
            + " of your own");
  }

  @Test
  void constructor_schemaThatOnlyContainsPg_isAccepted() {
    assertThat(new TableName("app_pg_keys", "keys").schema()).isEqualTo("app_pg_keys");
    assertThat(new TableName("pgx", "keys").schema()).isEqualTo("pgx");
  }

  @Test
  void constructor_tableTooLong_failsWithLengths() {
    String name = "k".repeat(TableName.MAX_TABLE_LENGTH + 1);
    assertThatThrownBy(() -> new TableName("public", name))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("is 41 characters; at most 40 allowed");
  }
}
