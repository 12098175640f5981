package io.idemkey.kafka;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.execution.IdempotentExecutor;
import io.idemkey.execution.InProgressException;
import io.idemkey.execution.LeaseLostException;
import io.idemkey.execution.Outcome;
import io.idemkey.migrations.TableName;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.StoreBuilder;
import io.idemkey.store.StoreUnavailableException;
import java.io.IOException;
import java.io.InputStream;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.time.Duration;
import java.util.List;
import javax.sql.DataSource;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;

/**
 * One consumer process of {@link KafkaChaosTest}: a plain {@code KafkaConsumer} loop whose
 * records go through a {@link RecordProcessor} in transactional mode, each writing one ledger
 * row. It runs until it is killed, or until its standard input closes (its parent is gone).
 *
 * <p>Arguments: bootstrap servers, JDBC URL, user, password, keys' schema, keys' table, ledger
 * table, topic, group, {@code offsets}, {@code offsets-poll} (each poll's records of a partition
 * in one transaction: {@link RecordProcessor#processAll}) or {@code header}, lease in
 * milliseconds.
 */
public final class ChaosConsumer {

  /** How seldom offsets are committed: every 2 s. */
  static final long COMMIT_EVERY_NANOS = 2_000_000_000L;

  private ChaosConsumer() {}

  public static void main(String[] args) throws Exception {
    Thread parentWatch = new Thread(ChaosConsumer::exitWhenInputCloses, "parent-watch");
    parentWatch.setDaemon(true);
    parentWatch.start();
    String bootstrap = args[0];
    String ledger = args[6];
    String topic = args[7];
    String group = args[8];
    boolean perPoll = args[9].equals("offsets-poll");
    RecordKeys keys = args[9].startsWith("offsets")
        ? RecordKeys.offsets() : RecordKeys.header("Idempotency-Key");
    Duration lease = Duration.ofMillis(Long.parseLong(args[10]));

    HikariConfig pool = new HikariConfig();
    pool.setJdbcUrl(args[1]);
    pool.setUsername(args[2]);
    pool.setPassword(args[3]);
    pool.setMaximumPoolSize(3);
    try (HikariDataSource dataSource = new HikariDataSource(pool);
        IdempotencyStore store = StoreBuilder.postgres(dataSource)
            .tableName(new TableName(args[4], args[5]))
            .migrate(false)
            .lease(lease)
            .sequenceKeys(keys.sequence())
            .notifySettled(true)
            .build();
        IdempotentExecutor executor = IdempotentExecutor.builder(store)
            .lease(lease)
            .transactional(true)
            .waitTimeout(lease.multipliedBy(3))
            .build();
        KafkaConsumer<String, String> consumer =
            new KafkaConsumer<>(TestBroker.consumerProperties(bootstrap, group))) {
      RecordProcessor processor = RecordProcessor.builder(executor).group(group).keys(keys).build();
      String self = Long.toString(ProcessHandle.current().pid());
      consumer.subscribe(List.of(topic));
      long lastCommit = System.nanoTime();
      RecordEffect<String, String, SQLException> insertRow = (r, attempt) -> {
        try (PreparedStatement insert = attempt.connection().orElseThrow()
            .prepareStatement("INSERT INTO " + ledger + " VALUES (?, ?)")) {
          insert.setString(1, r.value());
          insert.setString(2, self);
          insert.executeUpdate();
        }
      };
      while (true) {
        ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
        for (TopicPartition partition : records.partitions()) {
          List<ConsumerRecord<String, String>> polled = records.records(partition);
          if (perPoll) {
            try {
              int ran = processor.processAll(polled, insertRow);
              for (int i = ran; i < polled.size(); i++) {
                skipped(dataSource, ledger, "(in a poll)", Outcome.Kind.USED_UP);
              }
            } catch (InProgressException | StoreUnavailableException e) {
              consumer.seek(partition, polled.get(0).offset()); // none of them committed
            }
            continue;
          }
          for (ConsumerRecord<String, String> record : polled) {
            try {
              Outcome<Boolean> outcome = processor.process(record, insertRow);
              if (!outcome.executed()) {
                skipped(dataSource, ledger, record.value(), outcome.kind());
              }
            } catch (InProgressException | LeaseLostException | StoreUnavailableException e) {
              // Not settled by this consumer: deliver it and the partition's later records again
              // (the store says what was done).
              consumer.seek(partition, record.offset());
              break;
            }
          }
        }
        if (System.nanoTime() - lastCommit > COMMIT_EVERY_NANOS) {
          // Offsets committed seldom, as a consumer that commits on a timer: a kill then leaves
          // up to this long of processed records to be delivered again to the next owner.
          consumer.commitAsync();
          lastCommit = System.nanoTime();
        }
      }
    }
  }

  /** A record delivered again and not handled again: counted for the test. */
  private static void skipped(
      DataSource dataSource, String ledger, String payment, Outcome.Kind kind)
      throws SQLException {
    try (java.sql.Connection c = dataSource.getConnection();
        PreparedStatement skipped = c.prepareStatement(
            "INSERT INTO " + ledger + "_skipped VALUES (?, ?)")) {
      skipped.setString(1, payment);
      skipped.setString(2, kind.name());
      skipped.executeUpdate();
    }
  }

  private static void exitWhenInputCloses() {
    try {
      InputStream in = System.in;
      while (in.read() >= 0) {
        // nothing is sent; end of input means the test that started this process is gone
      }
    } catch (IOException e) {
      // as closed
    }
    Runtime.getRuntime().halt(0);
  }
}
