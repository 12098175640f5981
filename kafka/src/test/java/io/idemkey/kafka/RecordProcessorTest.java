package io.idemkey.kafka;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.idemkey.execution.Codec;
import io.idemkey.execution.IdempotentExecutor;
import io.idemkey.execution.LeaseLostException;
import io.idemkey.execution.Outcome;
import io.idemkey.migrations.TableName;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.MutableClock;
import io.idemkey.store.StoreBuilder;
import io.idemkey.store.TestDatabase;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Record processors with real consumers of a real broker (KRaft, in-process) over a real
 * PostgreSQL store, in transactional mode: redeliveries, producer duplicates, and a consumer that
 * lost its partition in a rebalance and is still running.
 */
class RecordProcessorTest {

  static final Duration LEASE = Duration.ofSeconds(30);

  final MutableClock clock = MutableClock.atEpochDay();
  final List<AutoCloseable> closing = new ArrayList<>();
  String ledger;
  String topic;
  String group;
  TableName table;

  @BeforeEach
  void createLedgerAndTopic() throws SQLException {
    ledger = "ledger_" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    try (Connection c = TestDatabase.dataSource().getConnection();
        Statement s = c.createStatement()) {
      s.execute("CREATE TABLE " + ledger + " (payment text NOT NULL, consumer text)");
    }
    topic = TestBroker.freshTopic(1);
    group = "ledger-" + UUID.randomUUID().toString().substring(0, 8);
  }

  @AfterEach
  void close() throws Exception {
    for (int i = closing.size() - 1; i >= 0; i--) {
      closing.get(i).close();
    }
  }

  /** A processor over a fresh table. */
  RecordProcessor processor(RecordKeys keys) {
    table = TestDatabase.freshTable();
    return consumerProcess(keys);
  }

  /** A processor of a consumer process of its own (its own store and executor) on the table. */
  RecordProcessor consumerProcess(RecordKeys keys) {
    IdempotencyStore store = StoreBuilder.postgres(TestDatabase.dataSource())
        .tableName(table).migrate(false).clock(clock).lease(LEASE)
        .sequenceKeys(keys.sequence()).notifySettled(true).purgeInterval(Duration.ZERO)
        .build();
    closing.add(store);
    IdempotentExecutor executor =
        IdempotentExecutor.builder(store).lease(LEASE).transactional(true).build();
    closing.add(executor);
    return RecordProcessor.builder(executor).group(group).keys(keys).build();
  }

  KafkaConsumer<String, String> consumer(Properties overrides) {
    Properties properties =
        TestBroker.consumerProperties(TestBroker.bootstrapServers(), group);
    properties.putAll(overrides);
    KafkaConsumer<String, String> consumer = new KafkaConsumer<>(properties);
    closing.add(consumer);
    consumer.subscribe(List.of(topic));
    return consumer;
  }

  void produce(String... headerKeysAndValues) {
    try (KafkaProducer<String, String> producer = TestBroker.producer()) {
      for (int i = 0; i < headerKeysAndValues.length; i += 2) {
        TestBroker.send(producer, topic, "k", headerKeysAndValues[i + 1], headerKeysAndValues[i]);
      }
      producer.flush();
    }
  }

  static List<ConsumerRecord<String, String>> pollAtLeast(
      KafkaConsumer<String, String> consumer, int count) {
    List<ConsumerRecord<String, String>> records = new ArrayList<>();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (records.size() < count && System.nanoTime() < deadline) {
      consumer.poll(TestBroker.pollTimeout()).forEach(records::add);
    }
    assertThat(records).as("records polled within 30 s").hasSizeGreaterThanOrEqualTo(count);
    return records;
  }

  void insert(Connection connection, String payment, String consumer) throws SQLException {
    try (PreparedStatement insert =
        connection.prepareStatement("INSERT INTO " + ledger + " VALUES (?, ?)")) {
      insert.setString(1, payment);
      insert.setString(2, consumer);
      insert.executeUpdate();
    }
  }

  List<String> ledgerRows() throws SQLException {
    List<String> rows = new ArrayList<>();
    try (Connection c = TestDatabase.dataSource().getConnection();
        Statement s = c.createStatement();
        ResultSet r = s.executeQuery(
            "SELECT payment || ':' || consumer FROM " + ledger + " ORDER BY 1")) {
      while (r.next()) {
        rows.add(r.getString(1));
      }
    }
    return rows;
  }

  @Test
  void process_offsetKeysRecordsDeliveredAgainBeforeTheOffsetCommit_areSkipped()
      throws Exception {
    RecordProcessor processor = processor(RecordKeys.offsets());
    produce(null, "pay-1", null, "pay-2", null, "pay-3");
    KafkaConsumer<String, String> first = consumer(new Properties());
    for (ConsumerRecord<String, String> record : pollAtLeast(first, 3)) {
      processor.process(record, (r, attempt) ->
          insert(attempt.connection().orElseThrow(), r.value(), "first"));
    }
    first.unsubscribe(); // gone before committing its offsets: the group hands them on

    List<Outcome.Kind> again = new ArrayList<>();
    RecordProcessor restarted = consumerProcess(RecordKeys.offsets()); // reads the floor
    KafkaConsumer<String, String> second = consumer(new Properties());
    for (ConsumerRecord<String, String> record : pollAtLeast(second, 3)) {
      again.add(restarted.process(record, (r, attempt) ->
          insert(attempt.connection().orElseThrow(), r.value(), "second")).kind());
    }

    assertThat(again).containsOnly(Outcome.Kind.USED_UP).hasSize(3);
    assertThat(ledgerRows()).containsExactly("pay-1:first", "pay-2:first", "pay-3:first");
    // The partition's floor is all that is kept: no row per record.
    assertThat(count("SELECT count(*) FROM " + table.qualifiedTable())).isZero();
    assertThat(count("SELECT floor FROM " + table.qualifiedFloorsTable())).isEqualTo(2);
  }

  long count(String sql) throws SQLException {
    try (Connection c = TestDatabase.dataSource().getConnection();
        Statement s = c.createStatement();
        ResultSet r = s.executeQuery(sql)) {
      assertThat(r.next()).isTrue();
      return r.getLong(1);
    }
  }

  @Test
  void processAll_offsetKeys_eachPartitionsRecordsInOneCommitAndRedeliveriesSkipped()
      throws Exception {
    topic = TestBroker.freshTopic(2);
    RecordProcessor processor = processor(RecordKeys.offsets());
    try (KafkaProducer<String, String> producer = TestBroker.producer()) {
      for (int i = 1; i <= 6; i++) { // customers a and b: one partition each, or both in one
        TestBroker.send(producer, topic, i % 2 == 0 ? "customer-a" : "customer-b", "pay-" + i,
            null);
      }
      producer.flush();
    }
    KafkaConsumer<String, String> first = consumer(new Properties());
    List<ConsumerRecord<String, String>> polled = pollAtLeast(first, 6);
    long partitions = polled.stream().map(ConsumerRecord::partition).distinct().count();

    int ran = processor.processAll(polled, (r, attempt) ->
        insert(attempt.connection().orElseThrow(), r.value(), "first"));
    first.unsubscribe(); // gone before committing its offsets: the group hands them on
    RecordProcessor restarted = consumerProcess(RecordKeys.offsets());
    int ranAgain = restarted.processAll(pollAtLeast(consumer(new Properties()), 6),
        (r, attempt) -> insert(attempt.connection().orElseThrow(), r.value(), "second"));

    assertThat(ran).isEqualTo(6);
    assertThat(ranAgain).isZero();
    assertThat(ledgerRows()).hasSize(6).allMatch(row -> row.endsWith(":first"));
    assertThat(count("SELECT count(*) FROM " + table.qualifiedTable())).isZero();
    assertThat(count("SELECT count(*) FROM " + table.qualifiedFloorsTable()))
        .isEqualTo(partitions);
  }

  @Test
  void process_headerKeysProducerSentTheEventTwice_secondGetsTheStoredResult() throws Exception {
    RecordProcessor processor = processor(RecordKeys.header("Idempotency-Key"));
    produce("evt-1", "pay-1", "evt-1", "pay-1", "evt-2", "pay-2");
    KafkaConsumer<String, String> consumer = consumer(new Properties());

    List<Outcome<String>> outcomes = new ArrayList<>();
    for (ConsumerRecord<String, String> record : pollAtLeast(consumer, 3)) {
      outcomes.add(processor.process(record, Codec.text(), (r, attempt) -> {
        insert(attempt.connection().orElseThrow(), r.value(), "c");
        return "ledger@" + r.offset();
      }));
    }

    assertThat(outcomes).extracting(Outcome::kind).containsExactly(
        Outcome.Kind.EXECUTED, Outcome.Kind.REPLAYED, Outcome.Kind.EXECUTED);
    assertThat(outcomes.get(1).value()).isEqualTo("ledger@0"); // the first delivery's result
    assertThat(ledgerRows()).containsExactly("pay-1:c", "pay-2:c");
  }

  @Test
  void process_headerKeyMissing_throwsInvalidRecordKeyNamingTheRecord() {
    RecordProcessor processor = processor(RecordKeys.header("Idempotency-Key"));
    produce(null, "pay-1");
    ConsumerRecord<String, String> record = pollAtLeast(consumer(new Properties()), 1).get(0);

    assertThatThrownBy(() -> processor.process(record, (r, attempt) -> {}))
        .isInstanceOf(InvalidRecordKeyException.class)
        .hasMessageContaining(topic + "-0@0")
        .hasMessageContaining("has no header Idempotency-Key");
  }

  /**
   * The stale consumer has written its ledger row but not committed when the partition's new
   * owner handles the same record: the owner commits, and the stale consumer's commit, finding
   * the partition's floor raised past its record, rolls its row back.
   */
  @Test
  void process_offsetKeysConsumerThatLostItsPartitionInARebalance_commitsNothing()
      throws Exception {
    Future<Outcome<Boolean>> staleRun = lostPartition(RecordKeys.offsets(), null);

    assertThat(staleRun.get(30, TimeUnit.SECONDS).kind()).isEqualTo(Outcome.Kind.USED_UP);
    assertThat(ledgerRows()).containsExactly("pay-1:owner");
  }

  /**
   * With header keys the stale consumer holds the record's key; when its stall outlasts its
   * lease the new owner takes the key over, and the stale consumer's commit is refused by the
   * fencing token.
   */
  @Test
  void process_headerKeysConsumerThatLostItsPartitionInARebalance_cannotCommit() throws Exception {
    Future<Outcome<Boolean>> staleRun = lostPartition(RecordKeys.header("Idempotency-Key"),
        () -> clock.advance(LEASE.plusSeconds(1)));

    assertThatThrownBy(() -> staleRun.get(30, TimeUnit.SECONDS))
        .hasCauseInstanceOf(LeaseLostException.class);
    assertThat(ledgerRows()).containsExactly("pay-1:owner");
  }

  /**
   * A consumer handles its record and stalls before committing, polling no more, so that the
   * group hands its partition on; the new owner (a process of its own) handles the record again,
   * after {@code beforeOwner}, and has to have executed it. Returns the stale consumer's run,
   * resumed.
   */
  Future<Outcome<Boolean>> lostPartition(RecordKeys keys, Runnable beforeOwner) throws Exception {
    RecordProcessor processor = processor(keys);
    RecordProcessor newOwner = consumerProcess(keys);
    produce("evt-1", "pay-1");
    Properties shortPoll = new Properties();
    shortPoll.put(ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG, "1500");
    KafkaConsumer<String, String> stale = consumer(shortPoll);
    ConsumerRecord<String, String> record = pollAtLeast(stale, 1).get(0);
    CountDownLatch inserted = new CountDownLatch(1);
    CountDownLatch resume = new CountDownLatch(1);
    ExecutorService thread = Executors.newSingleThreadExecutor();
    closing.add(thread::shutdownNow);
    try {
      Future<Outcome<Boolean>> staleRun = thread.submit(() -> processor.process(record,
          (r, attempt) -> {
            insert(attempt.connection().orElseThrow(), r.value(), "stale");
            inserted.countDown();
            resume.await(60, TimeUnit.SECONDS);
          }));
      assertThat(inserted.await(10, TimeUnit.SECONDS)).isTrue();
      KafkaConsumer<String, String> owner = consumer(new Properties());
      ConsumerRecord<String, String> redelivered = pollAtLeast(owner, 1).get(0);
      assertThat(redelivered.offset()).isEqualTo(record.offset());
      if (beforeOwner != null) {
        beforeOwner.run();
      }

      Outcome<Boolean> owned = newOwner.process(redelivered, (r, attempt) ->
          insert(attempt.connection().orElseThrow(), r.value(), "owner"));

      assertThat(owned.kind()).isEqualTo(Outcome.Kind.EXECUTED);
      return staleRun;
    } finally {
      resume.countDown();
    }
  }
}
