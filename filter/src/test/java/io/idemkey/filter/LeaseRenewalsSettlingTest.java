package io.idemkey.filter;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.migrations.TableName;
import io.idemkey.store.ClaimResult;
import io.idemkey.store.Fingerprint;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.StoreBuilder;
import io.idemkey.store.StoredResponse;
import io.idemkey.store.TestDatabase;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * Regression: a renewal whose statement ran just after the request's completion found the key
 * completed and reported the lease lost (a LEASE_LOST for a request that succeeded), because the
 * request stops its lease only after the completion returns. Execution marks its lease settling
 * before it completes, as the request thread here does.
 */
class LeaseRenewalsSettlingTest {

  @Test
  void renewalRacingTheCompletion_successfulRequestIsNeverReportedLost() throws Exception {
    TableName table = TestDatabase.freshTable();
    IdempotencyStore store =
        StoreBuilder.postgres(TestDatabase.dataSource()).tableName(table).migrate(false)
            .purgeInterval(Duration.ZERO).build();
    // A renewal every 100 ms.
    LeaseRenewals renewals = new LeaseRenewals(store, Duration.ofMillis(300));
    ExecutorService requestThread = Executors.newSingleThreadExecutor();
    AtomicInteger spurious = new AtomicInteger();
    int iterations = 8;
    try {
      for (int i = 0; i < iterations; i++) {
        IdempotencyKey key = new IdempotencyKey("s", "k" + i);
        long token =
            ((ClaimResult.Held) store.claim(key, new Fingerprint(new byte[32]))).token();
        // Someone else's statement holds the row for a moment (autovacuum-free stand-in for any
        // lock wait); the completion queues first, the renewal that ticks meanwhile behind it.
        try (Connection locker = TestDatabase.dataSource().getConnection()) {
          locker.setAutoCommit(false);
          try (PreparedStatement lock = locker.prepareStatement(
              "SELECT 1 FROM " + table.qualifiedTable() + " WHERE idem_key = ? FOR UPDATE")) {
            lock.setString(1, key.key());
            lock.executeQuery().close();
          }
          LeaseRenewals.Lease[] lease = new LeaseRenewals.Lease[1];
          AtomicInteger lost = new AtomicInteger();
          lease[0] = renewals.start(key, token, lost::incrementAndGet);
          // What Execution does: the completion, then stop.
          Future<Boolean> request = requestThread.submit(() -> {
            try {
              return store.complete(key, token,
                  new StoredResponse(201, List.of(), new byte[] {1}, true));
            } finally {
              lease[0].stop();
            }
          });
          awaitLockWaiters(table, 1); // the completion; a renewal skips the locked row
          Thread.sleep(400); // renewals tick meanwhile (a third of the lease)
          locker.commit();
          assertThat(request.get()).isTrue(); // the request succeeded and its response is stored
          Thread.sleep(200);
          spurious.addAndGet(lost.get());
        }
      }
    } finally {
      requestThread.shutdownNow();
      renewals.close();
      store.close();
    }
    assertThat(spurious.get())
        .as("LEASE_LOST reports for %d requests whose completion succeeded", iterations)
        .isZero();
  }

  static void awaitLockWaiters(TableName table, int count) throws Exception {
    long deadline = System.nanoTime() + 5_000_000_000L;
    while (System.nanoTime() < deadline) {
      try (Connection connection = TestDatabase.dataSource().getConnection();
          PreparedStatement statement = connection.prepareStatement(
              "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                  + " AND query LIKE ?")) {
        statement.setString(1, "%" + table.table() + "%");
        try (ResultSet rows = statement.executeQuery()) {
          rows.next();
          if (rows.getLong(1) >= count) {
            return;
          }
        }
      }
      Thread.sleep(10);
    }
    throw new AssertionError("the completion never waited for the row");
  }
}
