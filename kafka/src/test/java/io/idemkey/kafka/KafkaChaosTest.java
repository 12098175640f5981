package io.idemkey.kafka;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.migrations.TableName;
import io.idemkey.store.StoreBuilder;
import io.idemkey.store.TestDatabase;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Chaos: a producer of {@value #EVENTS} payment events, three consumer processes in one group,
 * killed (SIGKILL, by the pid of the process this test started) at random instants and restarted,
 * so that partitions move between them; transactional mode. Every event gets exactly one ledger
 * row: none twice, none lost. With offsets as keys, record by record and each poll's records of a
 * partition in one transaction, and with the producer's header keys.
 *
 * <p>Bounded: {@value #KILLS} kills, at most {@value #CONSUMERS} consumer processes alive at once
 * (each started by this test, with a closed parent ending it), a fixed deadline for the ledger to
 * fill. What the kills hit is random; the seed is in every assertion's message.
 */
class KafkaChaosTest {

  static final int EVENTS = 2_000;
  static final int PARTITIONS = 6;
  static final int CONSUMERS = 3;
  static final int KILLS = 12;
  static final long LEASE_MILLIS = 2_000;
  static final long DRAIN_SECONDS = 120;

  final List<Process> consumers = new ArrayList<>();
  final List<Process> started = new ArrayList<>();
  final List<String> killedPids = new ArrayList<>();
  Path logs;

  @AfterEach
  void stopConsumers() throws InterruptedException {
    for (Process process : started) {
      process.destroyForcibly();
    }
    for (Process process : started) {
      process.waitFor(10, TimeUnit.SECONDS);
    }
  }

  @Test
  void offsetKeys_consumersKilledAndRestarted_everyEventExactlyOnce() throws Exception {
    chaos("offsets");
  }

  @Test
  void offsetKeysEachPollInOneTransaction_consumersKilledAndRestarted_everyEventExactlyOnce()
      throws Exception {
    chaos("offsets-poll");
  }

  @Test
  void headerKeys_consumersKilledAndRestarted_everyEventExactlyOnce() throws Exception {
    chaos("header");
  }

  void chaos(String keys) throws Exception {
    long seed = System.nanoTime();
    Random random = new Random(seed);
    String context = "seed " + seed + ", keys " + keys;
    String topic = TestBroker.freshTopic(PARTITIONS);
    String group = "ledger-" + UUID.randomUUID().toString().substring(0, 8);
    TableName table = TestDatabase.freshTable();
    StoreBuilder.postgres(TestDatabase.dataSource()).tableName(table).migrate(false)
        .sequenceKeys(keys.startsWith("offsets")).build().close(); // the table's keys, once
    String ledger = "ledger_" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    execute("CREATE TABLE " + ledger + " (payment text NOT NULL, consumer text NOT NULL)");
    execute("CREATE TABLE " + ledger + "_skipped (payment text NOT NULL, outcome text NOT NULL)");
    logs = Files.createTempDirectory("idemkey-chaos-");
    List<String> arguments = List.of(TestBroker.bootstrapServers(), TestDatabase.jdbcUrl(),
        TestDatabase.user(), TestDatabase.password(), table.schema(), table.table(), ledger, topic,
        group, keys, Long.toString(LEASE_MILLIS));
    for (int i = 0; i < CONSUMERS; i++) {
      consumers.add(start(arguments));
    }

    Thread producer = new Thread(() -> produce(topic), "chaos-producer");
    producer.start();
    int kills = 0;
    while (kills < KILLS) {
      Thread.sleep(1_000 + random.nextInt(1_500));
      int victim = random.nextInt(CONSUMERS);
      Process killed = consumers.get(victim);
      killed.destroyForcibly(); // SIGKILL to a process this test started, by its own handle
      killedPids.add(Long.toString(killed.pid()));
      assertThat(killed.waitFor(10, TimeUnit.SECONDS)).as(context).isTrue();
      kills++;
      consumers.set(victim, start(arguments));
    }
    producer.join(TimeUnit.SECONDS.toMillis(60));
    assertThat(producer.isAlive()).as("the producer finished, " + context).isFalse();

    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(DRAIN_SECONDS);
    while (count("SELECT count(DISTINCT payment) FROM " + ledger) < EVENTS
        && System.nanoTime() < deadline) {
      Thread.sleep(250);
    }
    Thread.sleep(LEASE_MILLIS); // a late duplicate, if there were one, has time to land
    long rows = count("SELECT count(*) FROM " + ledger);
    long distinct = count("SELECT count(DISTINCT payment) FROM " + ledger);
    long twice = count("SELECT count(*) FROM (SELECT payment FROM " + ledger
        + " GROUP BY payment HAVING count(*) > 1) d");
    long skipped = count("SELECT count(*) FROM " + ledger + "_skipped");
    long writers = count("SELECT count(DISTINCT consumer) FROM " + ledger);
    long killedWriters = count("SELECT count(DISTINCT consumer) FROM " + ledger
        + " WHERE consumer IN ('" + String.join("','", killedPids) + "')");
    System.out.printf("chaos %s: %d events, %d kills, %d ledger rows, %d distinct, %d twice,"
        + " %d lost; %d deliveries skipped as handled; %d consumer processes wrote rows, %d of"
        + " them killed later (%s)%n",
        keys, EVENTS, kills, rows, distinct, twice, EVENTS - distinct, skipped, writers,
        killedWriters, context);

    assertThat(kills).isGreaterThanOrEqualTo(10);
    assertThat(twice).as("payments written twice, " + context + ", logs " + logs).isZero();
    assertThat(distinct).as("payments written, " + context + ", logs " + logs).isEqualTo(EVENTS);
    assertThat(rows).as("ledger rows, " + context).isEqualTo(EVENTS);
    // Records were delivered again (offsets are committed every 2 s), and idemkey skipped them:
    // without it, those deliveries would have written rows twice.
    assertThat(skipped).as("deliveries skipped as already handled, " + context).isPositive();
    // Partitions did move: a process that had written rows was killed, and others went on.
    assertThat(killedWriters).as("killed consumer processes that had written, " + context)
        .isPositive();
  }

  void produce(String topic) {
    try (KafkaProducer<String, String> producer = TestBroker.producer()) {
      for (int i = 0; i < EVENTS; i++) {
        TestBroker.send(producer, topic, "customer-" + (i % 97), "pay-" + i, "evt-" + i);
        if (i % 25 == 24) {
          producer.flush();
          Thread.sleep(250); // about 100 events a second: the kills land while they flow
        }
      }
      producer.flush();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  Process start(List<String> arguments) throws IOException {
    List<String> command = new ArrayList<>(List.of(
        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx160m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        "-cp", System.getProperty("java.class.path"),
        ChaosConsumer.class.getName()));
    command.addAll(arguments);
    File log = logs.resolve("consumer-" + started.size() + ".log").toFile();
    Process process = new ProcessBuilder(command)
        .redirectErrorStream(true)
        .redirectOutput(log)
        .start(); // its standard input stays open: closed when this JVM ends, which ends it
    started.add(process);
    return process;
  }

  static void execute(String sql) throws SQLException {
    try (Connection c = TestDatabase.dataSource().getConnection();
        Statement s = c.createStatement()) {
      s.execute(sql);
    }
  }

  static long count(String sql) throws SQLException {
    try (Connection c = TestDatabase.dataSource().getConnection();
        Statement s = c.createStatement();
        ResultSet r = s.executeQuery(sql)) {
      r.next();
      return r.getLong(1);
    }
  }
}
