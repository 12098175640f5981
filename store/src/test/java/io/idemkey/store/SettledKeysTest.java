package io.idemkey.store;

import static org.assertj.core.api.Assertions.assertThat;

import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.migrations.TableName;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;

/** Regression: the listening connection went back to a handed-in pool still subscribed. */
class SettledKeysTest {

  @Test
  void close_handedInPool_connectionReturnedWithoutItsListen() throws Exception {
    TableName table = TestDatabase.freshTable();
    try (HikariDataSource appPool = TestDatabase.newPool(1)) {
      PostgresStore node =
          new PostgresStore(appPool, table, null, Duration.ofHours(1), Duration.ofSeconds(30),
              Duration.ofSeconds(5), 100, true, false, false, null, true, null);
      CountDownLatch listening = new CountDownLatch(1);
      node.watch(new IdempotencyKey("s", "k"), listening::countDown); // called once LISTEN ran
      assertThat(listening.await(10, TimeUnit.SECONDS)).isTrue();
      node.close(); // the pool was handed in: it stays open, for the application

      // Another node keeps completing keys on the same table (same channel).
      PostgresStore other =
          new PostgresStore(TestDatabase.dataSource(), table, null, Duration.ofHours(1),
              Duration.ofSeconds(30), Duration.ofSeconds(5), 100, true, false, false, null, true, null);
      try (Connection connection = appPool.getConnection()) { // waits for the listener to let go
        for (int i = 0; i < 50; i++) {
          IdempotencyKey key = new IdempotencyKey("s", "n" + i);
          long token = ((ClaimResult.Held) other.claim(key, new Fingerprint(new byte[32]))).token();
          other.complete(key, token, new StoredResponse(200, java.util.List.of(), new byte[0], true));
        }
        long channels;
        try (Statement statement = connection.createStatement();
            ResultSet rows = statement.executeQuery("SELECT count(*) FROM pg_listening_channels()")) {
          rows.next();
          channels = rows.getLong(1);
        }
        PGNotification[] buffered = connection.unwrap(PGConnection.class).getNotifications();
        int count = buffered == null ? 0 : buffered.length;
        assertThat(channels + " channels listened, " + count + " notifications buffered")
            .isEqualTo("0 channels listened, 0 notifications buffered");
      }
    }
  }

  /**
   * Regression: a listening connection that went silent (its backend frozen, as a partition that
   * drops packets without a reset looks) was never noticed, and no settled key was heard again.
   */
  @Test
  void watch_listeningConnectionGoesSilent_listensAgainAndIsWokenAgain() throws Exception {
    SwitchableDataSource source = new SwitchableDataSource(TestDatabase.dataSource());
    String channel = "idemkey_silent_" + System.nanoTime();
    SettledKeys keys = new SettledKeys(source, channel, Duration.ofSeconds(1));
    AtomicInteger calls = new AtomicInteger();
    try {
      keys.watch("p", calls::incrementAndGet);
      awaitCalls(calls, 1); // LISTEN ran, and the watchers were told to look
      List<Long> backend =
          List.of((long) source.lastHandedOut().unwrap(PGConnection.class).getBackendPID());
      PostgresStoreHardeningTest.signal(backend, "STOP");
      try {
        // Found silent within a check and its bound; the watchers look again, and it listens anew.
        awaitCalls(calls, 3);
        int before = calls.get();
        try (Connection other = TestDatabase.dataSource().getConnection();
            Statement statement = other.createStatement()) {
          statement.execute("NOTIFY \"" + channel + "\", 'p'");
        }
        awaitCalls(calls, before + 1);
      } finally {
        PostgresStoreHardeningTest.signal(backend, "CONT");
      }
    } finally {
      keys.close();
    }
  }

  static void awaitCalls(AtomicInteger calls, int count) throws InterruptedException {
    for (int i = 0; i < 300 && calls.get() < count; i++) {
      Thread.sleep(50);
    }
    assertThat(calls.get()).isGreaterThanOrEqualTo(count);
  }
}
