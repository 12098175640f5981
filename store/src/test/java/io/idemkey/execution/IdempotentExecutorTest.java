package io.idemkey.execution;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.idemkey.migrations.TableName;
import io.idemkey.store.Fingerprint;
import io.idemkey.store.ForwardingStore;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.MutableClock;
import io.idemkey.store.StoreBuilder;
import io.idemkey.store.StoreUnavailableException;
import io.idemkey.store.StoredResponse;
import io.idemkey.store.TestDatabase;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The execution layer over a real PostgreSQL store: work run once per key, its result replayed,
 * in-flight duplicates waiting or refused, transactional mode, steps and fencing. Time that
 * decides leases is PostgreSQL's, moved by a settable clock; concurrency runs on real threads
 * released by one barrier.
 */
class IdempotentExecutorTest {

  static final Duration LEASE = Duration.ofSeconds(30);

  final MutableClock clock = MutableClock.atEpochDay();
  final List<AutoCloseable> closing = new ArrayList<>();
  TableName table;
  String ledger;
  IdempotencyStore store;

  @BeforeEach
  void createStoreAndLedger() throws SQLException {
    table = TestDatabase.freshTable();
    store = store(false);
    ledger = "ledger_" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    try (Connection c = TestDatabase.dataSource().getConnection();
        Statement s = c.createStatement()) {
      s.execute("CREATE TABLE " + ledger + " (payment text PRIMARY KEY, amount bigint NOT NULL)");
    }
  }

  @AfterEach
  void close() throws Exception {
    for (int i = closing.size() - 1; i >= 0; i--) {
      closing.get(i).close();
    }
  }

  IdempotencyStore store(boolean sequenceKeys) {
    IdempotencyStore built = StoreBuilder.postgres(TestDatabase.dataSource())
        .tableName(table)
        .migrate(false)
        .clock(clock)
        .lease(LEASE)
        .sequenceKeys(sequenceKeys)
        .notifySettled(true) // a waiting call is woken when the key settles
        .purgeInterval(Duration.ZERO)
        .build();
    closing.add(built);
    return built;
  }

  IdempotentExecutor executor(ExecutorBuilder builder) {
    IdempotentExecutor built = builder.build();
    closing.add(built);
    return built;
  }

  static Fingerprint fingerprint(String of) {
    byte[] digest = new byte[Fingerprint.LENGTH];
    Arrays.fill(digest, (byte) of.hashCode());
    return new Fingerprint(digest);
  }

  static IdempotencyKey key(String name) {
    return new IdempotencyKey("payments", name);
  }

  int ledgerRows() throws SQLException {
    try (Connection c = TestDatabase.dataSource().getConnection();
        Statement s = c.createStatement();
        ResultSet rows = s.executeQuery("SELECT count(*) FROM " + ledger)) {
      rows.next();
      return rows.getInt(1);
    }
  }

  static void insert(Connection connection, String ledger, String payment) throws SQLException {
    try (PreparedStatement insert =
        connection.prepareStatement("INSERT INTO " + ledger + " VALUES (?, 1250)")) {
      insert.setString(1, payment);
      insert.executeUpdate();
    }
  }

  @Test
  void execute_secondCall_getsTheStoredResultWithoutRunning() {
    IdempotentExecutor once = executor(IdempotentExecutor.builder(store).lease(LEASE));
    AtomicInteger runs = new AtomicInteger();

    Outcome<String> first =
        once.execute(key("p1"), fingerprint("a"), Codec.text(), a -> "ch_" + runs.incrementAndGet());
    Outcome<String> second =
        once.execute(key("p1"), fingerprint("a"), Codec.text(), a -> "ch_" + runs.incrementAndGet());

    assertThat(first.kind()).isEqualTo(Outcome.Kind.EXECUTED);
    assertThat(second.kind()).isEqualTo(Outcome.Kind.REPLAYED);
    assertThat(second.value()).isEqualTo("ch_1");
    assertThat(runs).hasValue(1);
  }

  @Test
  void execute_eightThreadsOneKey_runsOnceAndTheOthersWaitForItsResult() throws Exception {
    IdempotentExecutor once = executor(
        IdempotentExecutor.builder(store).lease(LEASE).onInFlight(OnInFlight.WAIT)
            .waitTimeout(Duration.ofSeconds(20)));
    AtomicInteger runs = new AtomicInteger();
    int threads = 8;
    CyclicBarrier start = new CyclicBarrier(threads);
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      List<Future<Outcome<String>>> outcomes = new ArrayList<>();
      for (int i = 0; i < threads; i++) {
        outcomes.add(pool.submit(() -> {
          start.await(10, TimeUnit.SECONDS);
          return once.execute(key("p2"), fingerprint("a"), Codec.text(), a -> {
            Thread.sleep(300); // long enough for every other thread to find the key held
            return "ch_" + runs.incrementAndGet();
          });
        }));
      }
      List<Outcome.Kind> kinds = new ArrayList<>();
      for (Future<Outcome<String>> outcome : outcomes) {
        Outcome<String> got = outcome.get(30, TimeUnit.SECONDS);
        kinds.add(got.kind());
        assertThat(got.value()).isEqualTo("ch_1");
      }
      assertThat(runs).hasValue(1);
      assertThat(kinds).containsOnlyOnce(Outcome.Kind.EXECUTED);
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void execute_rejectWhileAnotherRunHoldsTheKey_throwsInProgressWithoutRunning() throws Exception {
    IdempotentExecutor once = executor(
        IdempotentExecutor.builder(store).lease(LEASE).onInFlight(OnInFlight.REJECT));
    CountDownLatch running = new CountDownLatch(1);
    CountDownLatch finish = new CountDownLatch(1);
    ExecutorService pool = Executors.newSingleThreadExecutor();
    try {
      Future<Outcome<String>> holder = pool.submit(
          () -> once.execute(key("p3"), fingerprint("a"), Codec.text(), a -> {
            running.countDown();
            finish.await(20, TimeUnit.SECONDS);
            return "first";
          }));
      assertThat(running.await(10, TimeUnit.SECONDS)).isTrue();
      AtomicInteger runs = new AtomicInteger();

      assertThatThrownBy(() -> once.execute(key("p3"), fingerprint("a"), Codec.text(),
          a -> "second" + runs.incrementAndGet()))
          .isInstanceOf(InProgressException.class)
          .hasMessageContaining("lease runs for");
      finish.countDown();
      assertThat(holder.get(10, TimeUnit.SECONDS).kind()).isEqualTo(Outcome.Kind.EXECUTED);
      assertThat(runs).hasValue(0);
    } finally {
      finish.countDown();
      pool.shutdownNow();
    }
    assertThat(once.execute(key("p3"), fingerprint("a"), Codec.text(), a -> "third").value())
        .isEqualTo("first");
  }

  /**
   * Regression: without a transaction, a completion that failed (the store unreachable for that
   * call) released the key after the work had run, so the next call ran the work again. The key
   * is now left to its lease, as the method says.
   */
  @Test
  void execute_notTransactionalCompletionFails_keyLeftHeldAndTheWorkNotRunAgain() {
    IdempotencyStore failingCompletion = new ForwardingStore(store) {
      @Override
      public boolean complete(IdempotencyKey key, long token, StoredResponse response) {
        throw new StoreUnavailableException("the store went away while completing");
      }
    };
    IdempotentExecutor once = executor(IdempotentExecutor.builder(failingCompletion)
        .lease(LEASE).onInFlight(OnInFlight.REJECT));
    AtomicInteger runs = new AtomicInteger();

    assertThatThrownBy(() -> once.execute(key("p9"), fingerprint("a"), Codec.text(),
        a -> "ch_" + runs.incrementAndGet())).isInstanceOf(StoreUnavailableException.class);

    assertThatThrownBy(() -> once.execute(key("p9"), fingerprint("a"), Codec.text(),
        a -> "ch_" + runs.incrementAndGet())).isInstanceOf(InProgressException.class);
    assertThat(runs).hasValue(1);
  }

  @Test
  void execute_otherFingerprint_throwsKeyReused() {
    IdempotentExecutor once = executor(IdempotentExecutor.builder(store).lease(LEASE));
    once.execute(key("p4"), fingerprint("a"), Codec.text(), a -> "a");

    assertThatThrownBy(() -> once.execute(key("p4"), fingerprint("b"), Codec.text(), a -> "b"))
        .isInstanceOf(KeyReusedException.class);
  }

  @Test
  void execute_transactional_writesCommitWithTheCompletionAndRollBackWithAFailure()
      throws Exception {
    IdempotentExecutor once =
        executor(IdempotentExecutor.builder(store).lease(LEASE).transactional(true));

    assertThatThrownBy(() -> once.execute(key("p5"), fingerprint("a"), Codec.none(), a -> {
      insert(a.connection().orElseThrow(), ledger, "p5");
      throw new IllegalStateException("the handler failed after its insert");
    })).isInstanceOf(IllegalStateException.class);
    assertThat(ledgerRows()).isZero(); // rolled back, and the key released

    Outcome<Boolean> retried = once.execute(key("p5"), fingerprint("a"), Codec.none(), a -> {
      insert(a.connection().orElseThrow(), ledger, "p5");
      return true;
    });
    Outcome<Boolean> again = once.execute(key("p5"), fingerprint("a"), Codec.none(), a -> {
      insert(a.connection().orElseThrow(), ledger, "p5-twice");
      return true;
    });

    assertThat(retried.kind()).isEqualTo(Outcome.Kind.EXECUTED);
    assertThat(again.kind()).isEqualTo(Outcome.Kind.REPLAYED);
    assertThat(ledgerRows()).isEqualTo(1);
  }

  @Test
  void execute_transactionalLeaseTakenOver_staleRunCommitsNothing() throws Exception {
    IdempotentExecutor nodeA =
        executor(IdempotentExecutor.builder(store).lease(LEASE).transactional(true));
    IdempotentExecutor nodeB =
        executor(IdempotentExecutor.builder(store(false)).lease(LEASE).transactional(true));
    CountDownLatch inserted = new CountDownLatch(1);
    CountDownLatch takenOver = new CountDownLatch(1);
    ExecutorService pool = Executors.newSingleThreadExecutor();
    try {
      Future<Outcome<Boolean>> stale = pool.submit(
          () -> nodeA.execute(key("p6"), fingerprint("a"), Codec.none(), a -> {
            insert(a.connection().orElseThrow(), ledger, "p6-by-a");
            inserted.countDown();
            takenOver.await(20, TimeUnit.SECONDS); // a pause longer than its lease
            return true;
          }));
      assertThat(inserted.await(10, TimeUnit.SECONDS)).isTrue();
      clock.advance(LEASE.plusSeconds(1)); // A's lease runs out before its next renewal

      Outcome<Boolean> taken = nodeB.execute(key("p6"), fingerprint("a"), Codec.none(), a -> {
        insert(a.connection().orElseThrow(), ledger, "p6-by-b");
        return true;
      });
      takenOver.countDown();

      assertThat(taken.kind()).isEqualTo(Outcome.Kind.EXECUTED);
      assertThatThrownBy(() -> stale.get(20, TimeUnit.SECONDS))
          .hasCauseInstanceOf(LeaseLostException.class)
          .hasMessageContaining("rolled back");
      assertThat(ledgerRows()).isEqualTo(1);
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void execute_workFailsAfterAStep_retryReplaysTheStepWithoutCalling() {
    IdempotentExecutor once = executor(IdempotentExecutor.builder(store).lease(LEASE));
    AtomicInteger calls = new AtomicInteger();
    List<Boolean> replayed = new ArrayList<>();

    assertThatThrownBy(() -> once.execute(key("p7"), fingerprint("a"), Codec.text(), a -> {
      a.steps().runText("charge", stepKey -> "ch_" + calls.incrementAndGet());
      throw new IllegalStateException("crashed after the charge");
    })).isInstanceOf(IllegalStateException.class);
    Outcome<String> retried = once.execute(key("p7"), fingerprint("a"), Codec.text(),
        a -> a.steps().runText("charge", stepKey -> "ch_" + calls.incrementAndGet()));

    assertThat(retried.value()).isEqualTo("ch_1");
    assertThat(calls).hasValue(1);
  }

  @Test
  void execute_sequenceKeyBelowTheFloor_isUsedUpAndDoesNotRun() {
    table = TestDatabase.freshTable();
    IdempotencyStore offsets = store(true);
    IdempotentExecutor once = executor(IdempotentExecutor.builder(offsets).lease(LEASE));
    IdempotencyKey offset9 = new IdempotencyKey("orders/0", "9");
    once.execute(offset9, fingerprint("r"), Codec.none(), a -> true);
    clock.advance(StoreBuilder.DEFAULT_TTL.plusHours(1));
    offsets.purgeExpired(); // the floor rises to 9
    AtomicInteger runs = new AtomicInteger();

    Outcome<Boolean> redelivered = once.execute(new IdempotencyKey("orders/0", "7"),
        fingerprint("r"), Codec.none(), a -> runs.incrementAndGet() > 0);

    assertThat(redelivered.kind()).isEqualTo(Outcome.Kind.USED_UP);
    assertThat(redelivered.value()).isNull();
    assertThat(runs).hasValue(0);
  }
}
