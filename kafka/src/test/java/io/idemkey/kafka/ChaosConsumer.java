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
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
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
 * table, topic, group, {@code offsets} or {@code header}, lease in milliseconds.
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
    RecordKeys keys =
        args[9].equals("offsets") ? RecordKeys.offsets() : RecordKeys.header("Idempotency-Key");
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
      while (true) {
        ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
        Set<TopicPartition> retry = new HashSet<>();
        for (ConsumerRecord<String, String> record : records) {
          TopicPartition partition = new TopicPartition(record.topic(), record.partition());
          if (retry.contains(partition)) {
            continue; // an earlier record of this partition is to be handled again first
          }
          try {
            Outcome<Boolean> outcome = processor.process(record, (r, attempt) -> {
              try (PreparedStatement insert = attempt.connection().orElseThrow()
                  .prepareStatement("INSERT INTO " + ledger + " VALUES (?, ?)")) {
                insert.setString(1, r.value());
                insert.setString(2, self);
                insert.executeUpdate();
              }
            });
            if (!outcome.executed()) {
              // A record delivered again and not handled again: counted for the test.
              try (java.sql.Connection c = dataSource.getConnection();
                  PreparedStatement skipped = c.prepareStatement(
                      "INSERT INTO " + ledger + "_skipped VALUES (?, ?)")) {
                skipped.setString(1, record.value());
                skipped.setString(2, outcome.kind().name());
                skipped.executeUpdate();
              }
            }
          } catch (InProgressException | LeaseLostException | StoreUnavailableException e) {
            // Not settled by this consumer: deliver it again (the store says what was done).
            retry.add(partition);
            consumer.seek(partition, record.offset());
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
