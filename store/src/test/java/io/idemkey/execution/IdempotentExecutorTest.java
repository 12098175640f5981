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
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
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
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import javax.sql.DataSource;
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

  long rows(String sql) throws SQLException {
    try (Connection c = TestDatabase.dataSource().getConnection();
        Statement s = c.createStatement();
        ResultSet rows = s.executeQuery(sql)) {
      rows.next();
      return rows.getLong(1);
    }
  }

  @Test
  void executeInOrder_transactional_runsEachOffsetOnceAndKeepsOnlyTheFloor() throws Exception {
    table = TestDatabase.freshTable();
    IdempotencyStore offsets = store(true);
    IdempotentExecutor inOrder =
        executor(IdempotentExecutor.builder(offsets).lease(LEASE).transactional(true));
    AtomicInteger runs = new AtomicInteger();

    for (int offset = 0; offset < 5; offset++) {
      String payment = "o" + offset;
      Outcome<String> done = inOrder.executeInOrder(new IdempotencyKey("orders/0", "" + offset),
          Codec.text(), a -> {
            runs.incrementAndGet();
            insert(a.connection().orElseThrow(), ledger, payment);
            return payment;
          });
      assertThat(done.kind()).isEqualTo(Outcome.Kind.EXECUTED);
      assertThat(done.value()).isEqualTo(payment);
    }
    // Redelivered: to this executor (its floor known) and to a new one (the floor read).
    IdempotentExecutor restarted =
        executor(IdempotentExecutor.builder(offsets).lease(LEASE).transactional(true));
    for (IdempotentExecutor consumer : List.of(inOrder, restarted)) {
      Outcome<String> again = consumer.executeInOrder(new IdempotencyKey("orders/0", "3"),
          Codec.text(), a -> "ran again " + runs.incrementAndGet());
      assertThat(again.kind()).isEqualTo(Outcome.Kind.USED_UP);
      assertThat(again.value()).isNull();
    }

    assertThat(runs).hasValue(5);
    assertThat(ledgerRows()).isEqualTo(5);
    assertThat(offsets.floor(new IdempotencyKey("orders/0", "0"))).isEqualTo(4);
    assertThat(rows("SELECT count(*) FROM " + table.qualifiedTable())).isZero();
    assertThat(rows("SELECT count(*) FROM " + table.qualifiedFloorsTable())).isEqualTo(1);
  }

  @Test
  void executeInOrder_workFails_rolledBackAndTheFloorUnchangedSoItRunsAgain() throws Exception {
    table = TestDatabase.freshTable();
    IdempotencyStore offsets = store(true);
    IdempotentExecutor inOrder =
        executor(IdempotentExecutor.builder(offsets).lease(LEASE).transactional(true));
    IdempotencyKey offset7 = new IdempotencyKey("orders/1", "7");

    assertThatThrownBy(() -> inOrder.executeInOrder(offset7, Codec.none(), a -> {
      insert(a.connection().orElseThrow(), ledger, "o7");
      throw new IllegalStateException("the ledger refused it");
    })).isInstanceOf(IllegalStateException.class);
    assertThat(ledgerRows()).isZero();
    assertThat(offsets.floor(offset7)).isEqualTo(-1);

    Outcome<Boolean> retried = inOrder.executeInOrder(offset7, Codec.none(), a -> {
      insert(a.connection().orElseThrow(), ledger, "o7");
      return true;
    });

    assertThat(retried.kind()).isEqualTo(Outcome.Kind.EXECUTED);
    assertThat(ledgerRows()).isEqualTo(1);
    assertThat(offsets.floor(offset7)).isEqualTo(7);
  }

  /**
   * A consumer that lost its partition and still runs an offset, while the new owner runs the
   * same offset: the first to commit counts; the other, waiting at the floor's row, finds it
   * raised and commits nothing.
   */
  @Test
  void executeInOrder_twoConsumersRunOneOffset_oneCommitsAndTheOtherRollsBack() throws Exception {
    table = TestDatabase.freshTable();
    IdempotencyStore offsets = store(true);
    IdempotentExecutor oldOwner =
        executor(IdempotentExecutor.builder(offsets).lease(LEASE).transactional(true));
    IdempotentExecutor newOwner =
        executor(IdempotentExecutor.builder(offsets).lease(LEASE).transactional(true));
    IdempotencyKey offset12 = new IdempotencyKey("orders/2", "12");
    CountDownLatch oldWrote = new CountDownLatch(1);
    CountDownLatch newCommitted = new CountDownLatch(1);
    ExecutorService threads = Executors.newSingleThreadExecutor();
    try {
      Future<Outcome<Boolean>> stale = threads.submit(() ->
          oldOwner.executeInOrder(offset12, Codec.none(), a -> {
            insert(a.connection().orElseThrow(), ledger, "o12-by-old");
            oldWrote.countDown();
            assertThat(newCommitted.await(30, TimeUnit.SECONDS)).isTrue();
            return true;
          }));
      assertThat(oldWrote.await(30, TimeUnit.SECONDS)).isTrue();

      Outcome<Boolean> fresh = newOwner.executeInOrder(offset12, Codec.none(),
          a -> {
            insert(a.connection().orElseThrow(), ledger, "o12-by-new");
            return true;
          });
      newCommitted.countDown();

      assertThat(fresh.kind()).isEqualTo(Outcome.Kind.EXECUTED);
      assertThat(stale.get(30, TimeUnit.SECONDS).kind()).isEqualTo(Outcome.Kind.USED_UP);
    } finally {
      threads.shutdownNow();
    }
    assertThat(rows("SELECT count(*) FROM " + ledger + " WHERE payment = 'o12-by-new'"))
        .isEqualTo(1);
    assertThat(ledgerRows()).isEqualTo(1);
  }

  /**
   * Both consumers past their writes at once: the second's rise waits at the floor's row until
   * the first commits, then finds it raised.
   */
  @Test
  void executeInOrder_manyConsumersRaceEachOffset_eachOffsetCommittedOnce() throws Exception {
    table = TestDatabase.freshTable();
    IdempotencyStore offsets = store(true);
    int consumers = 4;
    int offsetsRun = 40;
    List<IdempotentExecutor> executors = new ArrayList<>();
    for (int c = 0; c < consumers; c++) {
      executors.add(executor(IdempotentExecutor.builder(offsets).lease(LEASE).transactional(true)));
    }
    AtomicInteger executed = new AtomicInteger();
    ExecutorService threads = Executors.newFixedThreadPool(consumers);
    try {
      for (int offset = 0; offset < offsetsRun; offset++) {
        IdempotencyKey key = new IdempotencyKey("orders/3", Integer.toString(offset));
        CyclicBarrier together = new CyclicBarrier(consumers);
        List<Future<?>> runs = new ArrayList<>();
        for (int c = 0; c < consumers; c++) {
          IdempotentExecutor consumer = executors.get(c);
          String payment = "o" + offset + "-by-" + c;
          runs.add(threads.submit(() -> {
            together.await(30, TimeUnit.SECONDS);
            Outcome<Boolean> outcome = consumer.executeInOrder(key, Codec.none(), a -> {
                  insert(a.connection().orElseThrow(), ledger, payment);
                  return true;
                });
            if (outcome.kind() == Outcome.Kind.EXECUTED) {
              executed.incrementAndGet();
            }
            return null;
          }));
        }
        for (Future<?> run : runs) {
          run.get(60, TimeUnit.SECONDS);
        }
      }
    } finally {
      threads.shutdownNow();
    }

    assertThat(executed).hasValue(offsetsRun);
    assertThat(ledgerRows()).isEqualTo(offsetsRun);
    for (int offset = 0; offset < offsetsRun; offset++) {
      assertThat(rows("SELECT count(*) FROM " + ledger + " WHERE payment LIKE 'o" + offset
          + "-by-%'")).as("offset %d", offset).isEqualTo(1);
    }
  }

  @Test
  void executeInOrder_notTransactional_claimsTheKeyAsExecuteDoes() throws Exception {
    table = TestDatabase.freshTable();
    IdempotencyStore offsets = store(true);
    IdempotentExecutor inOrder = executor(IdempotentExecutor.builder(offsets).lease(LEASE));
    IdempotencyKey offset3 = new IdempotencyKey("orders/4", "3");

    Outcome<String> first =
        inOrder.executeInOrder(offset3, Codec.text(), a -> "charged");
    Outcome<String> again =
        inOrder.executeInOrder(offset3, Codec.text(), a -> "charged twice");

    assertThat(first.kind()).isEqualTo(Outcome.Kind.EXECUTED);
    assertThat(again.kind()).isEqualTo(Outcome.Kind.REPLAYED);
    assertThat(again.value()).isEqualTo("charged");
    assertThat(rows("SELECT count(*) FROM " + table.qualifiedTable())).isEqualTo(1);
  }

  @Test
  void executeInOrder_opaqueStoreOrKey_refusedWithAClearError() {
    IdempotentExecutor opaque =
        executor(IdempotentExecutor.builder(store).lease(LEASE).transactional(true));
    assertThatThrownBy(() -> opaque.executeInOrder(new IdempotencyKey("orders/5", "1"),
        Codec.none(), a -> true))
        .isInstanceOf(UnsupportedOperationException.class)
        .hasMessageContaining("sequenceKeys(true)");

    table = TestDatabase.freshTable();
    IdempotentExecutor sequence =
        executor(IdempotentExecutor.builder(store(true)).lease(LEASE).transactional(true));
    assertThatThrownBy(() -> sequence.executeInOrder(new IdempotencyKey("orders/5", "x1"),
        Codec.none(), a -> true))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("sequence key");
  }

  static List<IdempotencyKey> offsets(String scope, int from, int to) {
    List<IdempotencyKey> keys = new ArrayList<>();
    for (int offset = from; offset <= to; offset++) {
      keys.add(new IdempotencyKey(scope, Integer.toString(offset)));
    }
    return keys;
  }

  @Test
  void executeInOrderList_runsTheKeysAboveTheFloorInOneCommit() throws Exception {
    table = TestDatabase.freshTable();
    IdempotencyStore offsets = store(true);
    IdempotentExecutor inOrder =
        executor(IdempotentExecutor.builder(offsets).lease(LEASE).transactional(true));
    List<IdempotencyKey> first = offsets("orders/6", 0, 9);

    int ran = inOrder.executeInOrder(first, (index, attempt) -> {
      assertThat(attempt.key()).isEqualTo(first.get(index));
      insert(attempt.connection().orElseThrow(), ledger, "o" + attempt.key().key());
    });
    List<IdempotencyKey> overlapping = offsets("orders/6", 5, 14); // 5 to 9 delivered again
    List<String> runAgain = new ArrayList<>();
    IdempotentExecutor restarted =
        executor(IdempotentExecutor.builder(offsets).lease(LEASE).transactional(true));
    int ranAgain = restarted.executeInOrder(overlapping, (index, attempt) -> {
          runAgain.add(attempt.key().key());
          insert(attempt.connection().orElseThrow(), ledger, "o" + attempt.key().key());
        });

    assertThat(ran).isEqualTo(10);
    assertThat(ranAgain).isEqualTo(5);
    assertThat(runAgain).containsExactly("10", "11", "12", "13", "14");
    assertThat(ledgerRows()).isEqualTo(15);
    assertThat(offsets.floor(first.get(0))).isEqualTo(14);
    assertThat(inOrder.executeInOrder(first, (index, attempt) -> {
      throw new AssertionError("ran again");
    })).isZero();
  }

  @Test
  void executeInOrderList_oneWorkFails_everyKeysWritesRolledBack() throws Exception {
    table = TestDatabase.freshTable();
    IdempotencyStore offsets = store(true);
    IdempotentExecutor inOrder =
        executor(IdempotentExecutor.builder(offsets).lease(LEASE).transactional(true));
    List<IdempotencyKey> keys = offsets("orders/7", 20, 24);

    assertThatThrownBy(() -> inOrder.executeInOrder(keys, (index, attempt) -> {
      insert(attempt.connection().orElseThrow(), ledger, "o" + attempt.key().key());
      if (index == 3) {
        throw new SQLException("the ledger refused o23");
      }
    })).isInstanceOf(SQLException.class).hasMessageContaining("o23");

    assertThat(ledgerRows()).isZero();
    assertThat(offsets.floor(keys.get(0))).isEqualTo(-1);
  }

  /**
   * A consumer that lost its partition still runs a poll's records 0 to 9 while the new owner
   * commits 0 to 3: the stale run's commit finds the floor raised, and it runs 4 to 9 again.
   */
  @Test
  void executeInOrderList_anotherRunCommittedSomeKeys_theRestRunAgainEachOnce() throws Exception {
    table = TestDatabase.freshTable();
    IdempotencyStore offsets = store(true);
    IdempotentExecutor stale =
        executor(IdempotentExecutor.builder(offsets).lease(LEASE).transactional(true));
    IdempotentExecutor owner =
        executor(IdempotentExecutor.builder(offsets).lease(LEASE).transactional(true));
    CountDownLatch staleWrote = new CountDownLatch(1);
    CountDownLatch ownerCommitted = new CountDownLatch(1);
    ExecutorService thread = Executors.newSingleThreadExecutor();
    try {
      Future<Integer> staleRun = thread.submit(() ->
          stale.executeInOrder(offsets("orders/8", 0, 9), (index, attempt) -> {
            insert(attempt.connection().orElseThrow(), ledger,
                "o" + attempt.key().key() + "-by-stale");
            if (index == 9 && staleWrote.getCount() > 0) {
              staleWrote.countDown();
              assertThat(ownerCommitted.await(30, TimeUnit.SECONDS)).isTrue();
            }
          }));
      assertThat(staleWrote.await(30, TimeUnit.SECONDS)).isTrue();
      int ownerRan = owner.executeInOrder(offsets("orders/8", 0, 3), (index, attempt) ->
          insert(attempt.connection().orElseThrow(), ledger,
              "o" + attempt.key().key() + "-by-owner"));
      ownerCommitted.countDown();

      assertThat(ownerRan).isEqualTo(4);
      assertThat(staleRun.get(30, TimeUnit.SECONDS)).isEqualTo(6);
    } finally {
      thread.shutdownNow();
    }
    for (int offset = 0; offset <= 9; offset++) {
      assertThat(rows("SELECT count(*) FROM " + ledger + " WHERE payment LIKE 'o" + offset
          + "-by-%'")).as("offset %d", offset).isEqualTo(1);
    }
    assertThat(rows("SELECT count(*) FROM " + ledger + " WHERE payment LIKE '%-by-owner'"))
        .isEqualTo(4);
  }

  @Test
  void executeInOrderList_keysNotRisingOrOfTwoScopes_refused() {
    table = TestDatabase.freshTable();
    IdempotentExecutor inOrder =
        executor(IdempotentExecutor.builder(store(true)).lease(LEASE).transactional(true));
    List<IdempotencyKey> falling =
        List.of(new IdempotencyKey("orders/9", "5"), new IdempotencyKey("orders/9", "4"));
    List<IdempotencyKey> twoScopes =
        List.of(new IdempotencyKey("orders/9", "5"), new IdempotencyKey("orders/10", "6"));

    assertThatThrownBy(() -> inOrder.executeInOrder(falling, (index, attempt) -> {}))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("key 1 is not above the one before it");
    assertThatThrownBy(() -> inOrder.executeInOrder(twoScopes, (index, attempt) -> {}))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("key 1 is of another scope");
    assertThatThrownBy(() -> inOrder.executeInOrder(List.of(), (index, attempt) -> {}))
        .isInstanceOf(IllegalArgumentException.class);
  }

  /**
   * A consumer that had owned a partition before (its floor seen at 0) is handed it again after
   * another committed offsets 1 to 3: its handler's insert of offset 1, keyed by the record,
   * fails on the other's row; the floor read again says the record was handled.
   */
  @Test
  void executeInOrder_staleFloorAndAUniqueRow_readsTheFloorAgainAndIsUsedUp() throws Exception {
    table = TestDatabase.freshTable();
    IdempotencyStore offsets = store(true);
    IdempotentExecutor returning =
        executor(IdempotentExecutor.builder(offsets).lease(LEASE).transactional(true));
    IdempotentExecutor other =
        executor(IdempotentExecutor.builder(offsets).lease(LEASE).transactional(true));
    InOrderWork<SQLException> ledgerRow = (index, attempt) ->
        insert(attempt.connection().orElseThrow(), ledger, "o" + attempt.key().key());
    returning.executeInOrder(offsets("orders/11", 0, 0), ledgerRow);
    other.executeInOrder(offsets("orders/11", 1, 3), ledgerRow);

    Outcome<Boolean> single = returning.executeInOrder(new IdempotencyKey("orders/11", "1"),
        Codec.none(), attempt -> {
          insert(attempt.connection().orElseThrow(), ledger, "o1");
          return true;
        });
    int ran = returning.executeInOrder(offsets("orders/11", 2, 4), ledgerRow);

    assertThat(single.kind()).isEqualTo(Outcome.Kind.USED_UP);
    assertThat(ran).isEqualTo(1); // 4 only
    assertThat(ledgerRows()).isEqualTo(5);
    assertThat(offsets.floor(new IdempotencyKey("orders/11", "0"))).isEqualTo(4);
  }

  /**
   * Two consumers run one offset whose ledger row is keyed by the record: the second's insert
   * waits for the first's row, then fails once the first commits; the floor says it was handled.
   */
  @Test
  void executeInOrder_raceOnAUniqueRow_theLoserIsUsedUp() throws Exception {
    table = TestDatabase.freshTable();
    IdempotencyStore offsets = store(true);
    IdempotentExecutor first =
        executor(IdempotentExecutor.builder(offsets).lease(LEASE).transactional(true));
    IdempotentExecutor second =
        executor(IdempotentExecutor.builder(offsets).lease(LEASE).transactional(true));
    IdempotencyKey offset7 = new IdempotencyKey("orders/12", "7");
    CountDownLatch firstWrote = new CountDownLatch(1);
    CountDownLatch commit = new CountDownLatch(1);
    ExecutorService threads = Executors.newFixedThreadPool(2);
    try {
      Future<Outcome<Boolean>> winner = threads.submit(() ->
          first.executeInOrder(offset7, Codec.none(), a -> {
            insert(a.connection().orElseThrow(), ledger, "o7");
            firstWrote.countDown();
            assertThat(commit.await(30, TimeUnit.SECONDS)).isTrue();
            return true;
          }));
      assertThat(firstWrote.await(30, TimeUnit.SECONDS)).isTrue();
      Future<Outcome<Boolean>> loser = threads.submit(() ->
          second.executeInOrder(offset7, Codec.none(), a -> {
            insert(a.connection().orElseThrow(), ledger, "o7"); // waits for the first's row
            return true;
          }));
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (rows("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
          + " AND query LIKE 'INSERT INTO " + ledger + "%'") == 0) {
        assertThat(System.nanoTime()).as("the second insert waits").isLessThan(deadline);
        Thread.sleep(20);
      }
      commit.countDown();

      assertThat(winner.get(30, TimeUnit.SECONDS).kind()).isEqualTo(Outcome.Kind.EXECUTED);
      assertThat(loser.get(30, TimeUnit.SECONDS).kind()).isEqualTo(Outcome.Kind.USED_UP);
    } finally {
      commit.countDown();
      threads.shutdownNow();
    }
    assertThat(ledgerRows()).isEqualTo(1);
  }

  /**
   * The commit of an offset lands but its reply is lost: the caller is told the store is away,
   * and its next call reads the floor instead of running the handler again.
   */
  @Test
  void executeInOrder_commitReplyLost_theRetryReadsTheFloorAndIsUsedUp() throws Exception {
    table = TestDatabase.freshTable();
    AtomicBoolean loseReply = new AtomicBoolean();
    DataSource losing = losingCommitReplies(TestDatabase.dataSource(), loseReply);
    IdempotencyStore offsets = StoreBuilder.postgres(losing).tableName(table).migrate(false)
        .clock(clock).lease(LEASE).sequenceKeys(true).purgeInterval(Duration.ZERO).build();
    closing.add(offsets);
    IdempotentExecutor consumer =
        executor(IdempotentExecutor.builder(offsets).lease(LEASE).transactional(true));
    AtomicInteger runs = new AtomicInteger();
    Work<Boolean, SQLException> ledgerRow = attempt -> {
      runs.incrementAndGet();
      insert(attempt.connection().orElseThrow(), ledger, "o5");
      return true;
    };
    consumer.executeInOrder(new IdempotencyKey("orders/13", "4"), Codec.none(), a -> true);
    IdempotencyKey offset5 = new IdempotencyKey("orders/13", "5");

    loseReply.set(true);
    assertThatThrownBy(() -> consumer.executeInOrder(offset5, Codec.none(), ledgerRow))
        .isInstanceOf(StoreUnavailableException.class);
    Outcome<Boolean> retried = consumer.executeInOrder(offset5, Codec.none(), ledgerRow);

    assertThat(offsets.floor(offset5)).isEqualTo(5); // it had landed
    assertThat(retried.kind()).isEqualTo(Outcome.Kind.USED_UP);
    assertThat(runs).hasValue(1);
    assertThat(ledgerRows()).isEqualTo(1);
  }

  /**
   * {@code source}, whose statements that end with {@code ; COMMIT} run, and then, once {@code
   * lose} is set, report a broken connection (08006), as a connection that broke after the
   * server committed would.
   */
  static DataSource losingCommitReplies(DataSource source, AtomicBoolean lose) {
    return (DataSource) Proxy.newProxyInstance(IdempotentExecutorTest.class.getClassLoader(),
        new Class<?>[] {DataSource.class}, (proxy, method, args) -> {
          if (method.getName().equals("isWrapperFor")) {
            return false; // so that the store takes its connections here, not from the pool
          }
          if (method.getName().equals("unwrap")) {
            throw new SQLException("not a wrapper");
          }
          Object result = forward(method, source, args);
          if (!method.getName().equals("getConnection")) {
            return result;
          }
          Connection connection = (Connection) result;
          return Proxy.newProxyInstance(IdempotentExecutorTest.class.getClassLoader(),
              new Class<?>[] {Connection.class}, (c, m, a) -> {
                Object made = forward(m, connection, a);
                if (!m.getName().equals("prepareStatement")
                    || !((String) a[0]).endsWith("; COMMIT")) {
                  return made;
                }
                PreparedStatement statement = (PreparedStatement) made;
                return Proxy.newProxyInstance(IdempotentExecutorTest.class.getClassLoader(),
                    new Class<?>[] {PreparedStatement.class}, (st, sm, sa) -> {
                      Object done = forward(sm, statement, sa);
                      if (sm.getName().equals("execute") && lose.getAndSet(false)) {
                        throw new SQLException("the reply was lost (injected)", "08006");
                      }
                      return done;
                    });
              });
        });
  }

  static Object forward(Method method, Object target, Object[] args) throws Throwable {
    try {
      return method.invoke(target, args);
    } catch (InvocationTargetException e) {
      throw e.getCause();
    }
  }
}
