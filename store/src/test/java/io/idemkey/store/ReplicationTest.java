package io.idemkey.store;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The replication that the health checks report (SPEC §14), read from real servers. */
class ReplicationTest {

  static final Duration TIMEOUT = Duration.ofSeconds(5);

  @TempDir static Path dir;
  static PrimaryAndStandby synchronous;
  static PrimaryAndStandby asynchronous;

  @BeforeAll
  static void start() throws IOException {
    synchronous = PrimaryAndStandby.start(dir.resolve("synchronous"), true);
    asynchronous = PrimaryAndStandby.start(dir.resolve("asynchronous"), false);
  }

  @AfterAll
  static void stop() {
    try (PrimaryAndStandby first = synchronous; PrimaryAndStandby second = asynchronous) {
      // closed
    }
  }

  @Test
  void of_serverWithoutStandby_isNone() throws SQLException {
    try (Connection connection = TestDatabase.dataSource().getConnection()) {
      Replication replication = Replication.of(connection, TIMEOUT);

      assertThat(replication.mode()).isEqualTo(Replication.Mode.NONE);
      assertThat(replication.standbys()).isZero();
    }
  }

  @Test
  void of_primaryWithSynchronousStandby_isSynchronous() throws SQLException {
    try (Connection connection = PrimaryAndStandby.connect(synchronous.primaryPort())) {
      Replication replication = Replication.of(connection, TIMEOUT);

      assertThat(replication.mode()).isEqualTo(Replication.Mode.SYNCHRONOUS);
      assertThat(replication.standbys()).isEqualTo(1);
      assertThat(replication.synchronousStandbys()).isEqualTo(1);
      assertThat(replication.synchronousStandbyNames()).isEqualTo(PrimaryAndStandby.STANDBY_NAME);
    }
  }

  @Test
  void of_sessionThatCommitsLocally_isAsynchronous() throws SQLException {
    try (Connection connection = PrimaryAndStandby.connect(synchronous.primaryPort());
        Statement statement = connection.createStatement()) {
      statement.execute("SET synchronous_commit = local");

      assertThat(Replication.of(connection, TIMEOUT).mode()).isEqualTo(Replication.Mode.ASYNCHRONOUS);
    }
  }

  @Test
  void of_primaryWithAsynchronousStandby_isAsynchronous() throws SQLException {
    try (Connection connection = PrimaryAndStandby.connect(asynchronous.primaryPort())) {
      Replication replication = Replication.of(connection, TIMEOUT);

      assertThat(replication.mode()).isEqualTo(Replication.Mode.ASYNCHRONOUS);
      assertThat(replication.standbys()).isEqualTo(1);
      assertThat(replication.synchronousStandbys()).isZero();
    }
  }

  @Test
  void of_standby_isStandby() throws SQLException {
    try (Connection connection = PrimaryAndStandby.connect(synchronous.standbyPort())) {
      assertThat(Replication.of(connection, TIMEOUT).mode()).isEqualTo(Replication.Mode.STANDBY);
    }
  }

  @Test
  void of_userWhoMayNotSeeTheStandbysState_isUnknown() throws SQLException {
    try (Connection admin = PrimaryAndStandby.connect(synchronous.primaryPort());
        Statement statement = admin.createStatement()) {
      statement.execute("CREATE ROLE app LOGIN");
    }
    try (Connection connection = DriverManager.getConnection(
        "jdbc:postgresql://127.0.0.1:" + synchronous.primaryPort() + "/postgres", "app", "")) {
      Replication replication = Replication.of(connection, TIMEOUT);

      assertThat(replication.mode()).isEqualTo(Replication.Mode.UNKNOWN);
      assertThat(replication.hiddenStandbys()).isEqualTo(1);
    }
  }
}
