package io.idemkey.store;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.migrations.TableName;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;

/**
 * A settled key notifies the nodes only when a request waits for it (its row marked), and no
 * waiter misses its key's settling, whichever comes first. Two stores on one table are two nodes.
 */
class WaitMarksTest {

  private static final Fingerprint FINGERPRINT = new Fingerprint(new byte[32]);
  private static final StoredResponse RESPONSE =
      new StoredResponse(201, List.of(), "paid".getBytes(), true);

  private TableName table;
  private PostgresStore holder;
  private PostgresStore waiter;

  @BeforeEach
  void nodes() {
    table = TestDatabase.freshTable();
    holder = node(table);
    waiter = node(table);
  }

  @AfterEach
  void close() {
    holder.close();
    waiter.close();
  }

  private static PostgresStore node(TableName table) {
    return new PostgresStore(TestDatabase.dataSource(), table, null, Duration.ofHours(1),
        Duration.ofSeconds(30), Duration.ofSeconds(5), 100, true, false, false, null, true, null);
  }

  @Test
  void complete_keyNoOneWaitsFor_notifiesNoOne() throws Exception {
    try (Listener listener = new Listener(holder.settledChannel())) {
      IdempotencyKey key = key();
      assertThat(holder.complete(key, claim(key), RESPONSE)).isTrue();
      IdempotencyKey released = key();
      assertThat(holder.release(released, claim(released))).isTrue();

      assertThat(listener.untilSentinel()).isEmpty();
    }
  }

  @Test
  void complete_keyWaitedForOnAnotherNode_notifiesOnceAndWakesIt() throws Exception {
    try (Listener listener = new Listener(holder.settledChannel())) {
      awaitListening(waiter);
      IdempotencyKey key = key();
      long token = claim(key);
      CountDownLatch woken = new CountDownLatch(1);
      try (IdempotencyStore.Registration watching = waiter.watch(key, woken::countDown)) {
        awaitMarked(key);
        assertThat(woken.getCount()).as("woken before the key settled").isEqualTo(1);

        assertThat(holder.complete(key, token, RESPONSE)).isTrue();

        assertThat(woken.await(10, TimeUnit.SECONDS)).isTrue();
        assertThat(listener.untilSentinel()).hasSize(1);
      }
    }
  }

  @Test
  void release_keyWaitedFor_wakesTheWaiter() throws Exception {
    IdempotencyKey key = key();
    long token = claim(key);
    CountDownLatch woken = new CountDownLatch(1);
    try (IdempotencyStore.Registration watching = waiter.watch(key, woken::countDown)) {
      awaitMarked(key);

      assertThat(holder.release(key, token)).isTrue();

      assertThat(woken.await(10, TimeUnit.SECONDS)).isTrue();
    }
  }

  /** The key settled between the waiter's claim and its mark: the mark itself wakes it. */
  @Test
  void watch_keySettledBeforeItsMark_wakesAtOnce() throws Exception {
    IdempotencyKey key = key();
    assertThat(holder.complete(key, claim(key), RESPONSE)).isTrue();
    CountDownLatch woken = new CountDownLatch(1);

    try (IdempotencyStore.Registration watching = waiter.watch(key, woken::countDown)) {
      assertThat(woken.await(10, TimeUnit.SECONDS)).isTrue();
    }
  }

  /**
   * The key's row is held {@code FOR SHARE} (a request's transaction above READ COMMITTED) when
   * the mark comes: the mark does not wait for it, is tried again, lands once the lock is gone,
   * and the completion then wakes the waiter.
   */
  @Test
  void watch_rowLockedByItsRequestsTransaction_markedOnceUnlockedAndWoken() throws Exception {
    IdempotencyKey key = key();
    long token = claim(key);
    CountDownLatch woken = new CountDownLatch(1);
    try (Connection locking = TestDatabase.dataSource().getConnection()) {
      locking.setAutoCommit(false);
      try (Statement statement = locking.createStatement()) {
        statement.execute("SELECT 1 FROM " + table.qualifiedTable() + " WHERE idem_key = '"
            + key.key() + "' FOR SHARE");
      }
      IdempotencyStore.Registration watching = waiter.watch(key, woken::countDown);
      try {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (waiter.waitMarksRetried() < 2 && System.nanoTime() < deadline) {
          Thread.sleep(5);
        }
        assertThat(waiter.waitMarksRetried()).as("marks found the row locked").isGreaterThan(1);
        assertThat(marked(key)).isFalse();
        locking.commit();

        awaitMarked(key);
        assertThat(holder.complete(key, token, RESPONSE)).isTrue();
        assertThat(woken.await(10, TimeUnit.SECONDS)).isTrue();
      } finally {
        watching.close();
      }
    }
  }

  /** Many nodes' waiters and many holders at once: every waiter is woken by its key's settling. */
  @Test
  void watch_manyKeysSettlingWhileMarked_everyWaiterWoken() throws Exception {
    int keys = 200;
    List<IdempotencyKey> held = new ArrayList<>();
    List<Long> tokens = new ArrayList<>();
    for (int i = 0; i < keys; i++) {
      IdempotencyKey key = key();
      held.add(key);
      tokens.add(claim(key));
    }
    CountDownLatch woken = new CountDownLatch(keys);
    List<IdempotencyStore.Registration> watching = new ArrayList<>();
    Thread settling = new Thread(() -> {
      for (int i = 0; i < keys; i++) {
        if (i % 2 == 0) {
          holder.complete(held.get(i), tokens.get(i), RESPONSE);
        } else {
          holder.release(held.get(i), tokens.get(i));
        }
      }
    });
    try {
      for (IdempotencyKey key : held) {
        watching.add(waiter.watch(key, woken::countDown));
        if (watching.size() == keys / 2) {
          settling.start(); // settles keys marked, keys being marked and keys not marked yet
        }
      }
      settling.join(TimeUnit.SECONDS.toMillis(30));

      assertThat(woken.await(20, TimeUnit.SECONDS)).as(woken.getCount() + " not woken").isTrue();
    } finally {
      watching.forEach(IdempotencyStore.Registration::close);
    }
  }

  /**
   * Waits until {@code node} listens: it then calls every watcher once (a settling may have been
   * missed before), so that a later call is a wake-up. The key watched is held, so its mark does
   * not call.
   */
  private void awaitListening(PostgresStore node) throws InterruptedException {
    IdempotencyKey held = key();
    claim(held);
    CountDownLatch listening = new CountDownLatch(1);
    try (IdempotencyStore.Registration watching = node.watch(held, listening::countDown)) {
      assertThat(listening.await(10, TimeUnit.SECONDS)).as("listening").isTrue();
    }
  }

  private long claim(IdempotencyKey key) {
    return ((ClaimResult.Held) holder.claim(key, FINGERPRINT)).token();
  }

  private static IdempotencyKey key() {
    return new IdempotencyKey("s", UUID.randomUUID().toString());
  }

  private boolean marked(IdempotencyKey key) throws SQLException {
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement();
        var row = statement.executeQuery("SELECT waited IS TRUE FROM " + table.qualifiedTable()
            + " WHERE idem_key = '" + key.key() + "'")) {
      return row.next() && row.getBoolean(1);
    }
  }

  private void awaitMarked(IdempotencyKey key) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (!marked(key)) {
      assertThat(System.nanoTime()).as("marked within 10 s").isLessThan(deadline);
      Thread.sleep(5);
    }
  }

  /**
   * A connection that listens on the channel; {@link #untilSentinel} sends a notification of its
   * own after everything before has committed and returns what came before it (notifications
   * arrive in commit order).
   */
  private static final class Listener implements AutoCloseable {
    private final String channel;
    private final Connection connection;

    Listener(String channel) throws SQLException {
      this.channel = channel;
      this.connection = TestDatabase.dataSource().getConnection();
      connection.setAutoCommit(true);
      try (Statement statement = connection.createStatement()) {
        statement.execute("LISTEN \"" + channel + "\"");
      }
    }

    List<String> untilSentinel() throws Exception {
      String sentinel = "sentinel-" + UUID.randomUUID();
      try (Connection other = TestDatabase.dataSource().getConnection();
          Statement statement = other.createStatement()) {
        if (!other.getAutoCommit()) {
          other.setAutoCommit(true);
        }
        statement.execute("SELECT pg_notify('" + channel + "', '" + sentinel + "')");
      }
      List<String> before = new ArrayList<>();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (System.nanoTime() < deadline) {
        PGNotification[] notifications =
            connection.unwrap(PGConnection.class).getNotifications(500);
        for (PGNotification notification : notifications == null
            ? new PGNotification[0] : notifications) {
          if (notification.getParameter().equals(sentinel)) {
            return before;
          }
          before.add(notification.getParameter());
        }
      }
      throw new AssertionError("the sentinel notification never came; before it: " + before);
    }

    @Override
    public void close() throws SQLException {
      try (Statement statement = connection.createStatement()) {
        statement.execute("UNLISTEN *");
      }
      connection.close();
    }
  }
}
