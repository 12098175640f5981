package io.idemkey.compat;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.idemkey.store.TestDatabase;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import org.junit.jupiter.api.Test;

/** The contract tests of this module really ran on PostgreSQL 14 (not on the suite's 17). */
class PostgresVersionTest {

  @Test
  void serverVersion_embeddedDatabase_isFourteen() throws Exception {
    assumeTrue(System.getenv("IDEMPOTENCY_TEST_JDBC_URL") == null,
        "an external test database is set: its version is its own");
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement();
        ResultSet result = statement.executeQuery("SHOW server_version_num")) {
      result.next();
      assertThat(result.getInt(1) / 10000).isEqualTo(14);
    }
  }
}
