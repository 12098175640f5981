package io.idemkey.benchmarks;

import io.idemkey.execution.IdempotentExecutor;
import io.idemkey.kafka.RecordEffect;
import io.idemkey.kafka.RecordKeys;
import io.idemkey.kafka.RecordProcessor;
import io.idemkey.migrations.Migrations;
import io.idemkey.migrations.TableName;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.StoreBuilder;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import javax.sql.DataSource;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.postgresql.ds.PGSimpleDataSource;
import org.springframework.kafka.test.EmbeddedKafkaKraftBroker;

/**
 * Records per second through a plain {@code KafkaConsumer} loop whose handler inserts one ledger
 * row per record, in one run, interleaved round by round (variants in a rotating order):
 *
 * <ul>
 *   <li>{@code plain}: without idemkey, the insert in auto-commit (one commit per record);
 *   <li>{@code bare-tx}: without idemkey, the insert in a transaction of its own (two round trips,
 *       the least a record's writes and its settlement in one commit can take);
 *   <li>{@code offsets}: an idemkey {@link RecordProcessor}, transactional, offset keys, record by
 *       record (the insert and the partition's floor in one commit);
 *   <li>{@code offsets-poll}: the same, each poll's records of a partition in one commit ({@link
 *       RecordProcessor#processAll});
 *   <li>{@code bare-poll}: without idemkey, each poll's inserts of a partition in one transaction
 *       (one insert at a time, as {@code offsets-poll}'s handler runs them);
 *   <li>{@code header}: transactional, the producer's header keys (a claimed row per record).
 * </ul>
 *
 * <p>Then the store's rows after {@code --million} records with offset keys (one floor per
 * partition). A broker (Apache Kafka in KRaft mode) and a durable PostgreSQL (fsync and
 * synchronous commit on) run beside this JVM. Each variant consumes the same topic under a group
 * of its own, on one thread. Not thread-safe; a main program.
 *
 * <pre>
 * java -cp benchmarks/target/benchmarks.jar io.idemkey.benchmarks.KafkaConsumerLoad \
 *     [--records 20000] [--partitions 4] [--rounds 3] [--million 1000000] \
 *     [--variants plain,bare-tx,offsets,bare-poll,offsets-poll,header]
 * </pre>
 */
public final class KafkaConsumerLoad {

  private KafkaConsumerLoad() {}

  public static void main(String[] args) throws Exception {
    int records = intArgument(args, "--records", 20_000);
    int partitions = intArgument(args, "--partitions", 4);
    int rounds = intArgument(args, "--rounds", 3);
    int million = intArgument(args, "--million", 1_000_000);
    EmbeddedKafkaKraftBroker broker = new EmbeddedKafkaKraftBroker(1, partitions);
    broker.afterPropertiesSet();
    try (DurablePostgres postgres = DurablePostgres.start(false)) {
      postgres.requireDurable();
      PGSimpleDataSource dataSource = new PGSimpleDataSource();
      dataSource.setUrl(postgres.jdbcUrl());
      dataSource.setUser(postgres.user());
      dataSource.setPassword(postgres.password());
      String bootstrap = broker.getBrokersAsString();
      String topic = "payments";
      try (Admin admin = Admin.create(Map.of("bootstrap.servers", bootstrap))) {
        admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all()
            .get(60, TimeUnit.SECONDS);
      }
      produce(bootstrap, topic, records);
      System.out.printf("%d records on %d partitions; PostgreSQL fsync=%s synchronous_commit=%s%n",
          records, partitions, postgres.show("fsync"), postgres.show("synchronous_commit"));
      execute(dataSource, "CREATE TABLE ledger (payment text NOT NULL, variant text NOT NULL)");
      TableName offsets = new TableName("public", "idempotency_offsets");
      TableName headers = new TableName("public", "idempotency_message_keys");
      Migrations.migrate(dataSource, offsets);
      Migrations.migrate(dataSource, headers);

      String[] variants = stringArgument(
          args, "--variants", "plain,bare-tx,offsets,bare-poll,offsets-poll,header").split(",");
      Map<String, List<Double>> rates = new java.util.LinkedHashMap<>();
      for (String variant : variants) {
        rates.put(variant, new ArrayList<>());
      }
      for (int round = 1; round <= rounds; round++) {
        for (int v = 0; v < variants.length; v++) {
          String variant = variants[(v + round) % variants.length]; // rotate the order
          double rate = consume(bootstrap, topic, records, dataSource, variant,
              variant.startsWith("offsets") ? offsets : headers);
          rates.get(variant).add(rate);
          System.out.printf("round %d %-8s %8.0f records/s%n", round, variant, rate);
        }
      }
      StringBuilder summary = new StringBuilder("median records/s:");
      Double plain = rates.containsKey("plain") ? median(rates.get("plain")) : null;
      for (Map.Entry<String, List<Double>> variant : rates.entrySet()) {
        double rate = median(variant.getValue());
        summary.append(String.format(" %s %.0f", variant.getKey(), rate));
        if (plain != null && !variant.getKey().equals("plain")) {
          summary.append(String.format(" (%.2fx)", rate / plain));
        }
        summary.append(',');
      }
      System.out.println(summary.substring(0, summary.length() - 1));

      if (million > 0) {
        storeRowsAfter(dataSource, million, partitions);
      }
    } finally {
      broker.destroy();
    }
  }

  /** Consumes every record under a new group; the records per second from the first poll. */
  static double consume(
      String bootstrap, String topic, int records, DataSource dataSource, String variant,
      TableName table) throws Exception {
    String group = variant + "-" + UUID.randomUUID();
    Properties properties = new Properties();
    properties.put("bootstrap.servers", bootstrap);
    properties.put("group.id", group);
    properties.put("enable.auto.commit", "false");
    properties.put("auto.offset.reset", "earliest");
    properties.put("max.poll.records", "500");
    properties.put("key.deserializer", StringDeserializer.class.getName());
    properties.put("value.deserializer", StringDeserializer.class.getName());
    com.zaxxer.hikari.HikariConfig poolConfig = new com.zaxxer.hikari.HikariConfig();
    poolConfig.setDataSource(dataSource);
    poolConfig.setMaximumPoolSize(4);
    try (com.zaxxer.hikari.HikariDataSource pool = new com.zaxxer.hikari.HikariDataSource(
            poolConfig);
        IdempotencyStore store = !variant.startsWith("offsets") && !variant.equals("header") ? null
            : StoreBuilder.postgres(pool).tableName(table).migrate(false)
                .sequenceKeys(variant.startsWith("offsets")).deferClaimFlush(true).build();
        IdempotentExecutor executor = store == null ? null
            : IdempotentExecutor.builder(store).transactional(true).build();
        KafkaConsumer<String, String> consumer = new KafkaConsumer<>(properties);
        Connection plainConnection = pool.getConnection()) {
      RecordProcessor processor = executor == null ? null
          : RecordProcessor.builder(executor).group(group)
              .keys(variant.startsWith("offsets")
                  ? RecordKeys.offsets() : RecordKeys.header("Idempotency-Key"))
              .build();
      consumer.subscribe(List.of(topic));
      int done = 0;
      long started = 0;
      RecordEffect<String, String, SQLException> insertRow = (r, attempt) -> {
        try (PreparedStatement insert = attempt.connection().orElseThrow()
            .prepareStatement("INSERT INTO ledger VALUES (?, ?)")) {
          insert.setString(1, r.value());
          insert.setString(2, variant);
          insert.executeUpdate();
        }
      };
      try (PreparedStatement plainInsert = plainConnection.prepareStatement(
          "INSERT INTO ledger VALUES (?, ?)")) {
        while (done < records) {
          ConsumerRecords<String, String> polled = consumer.poll(Duration.ofMillis(500));
          if (started == 0 && !polled.isEmpty()) {
            started = System.nanoTime();
          }
          if (variant.equals("offsets-poll")) {
            for (TopicPartition partition : polled.partitions()) {
              processor.processAll(polled.records(partition), insertRow);
            }
            done += polled.count();
          } else if (variant.equals("bare-poll")) {
            for (TopicPartition partition : polled.partitions()) {
              try (Connection connection = pool.getConnection()) {
                connection.setAutoCommit(false);
                try (PreparedStatement insert =
                    connection.prepareStatement("INSERT INTO ledger VALUES (?, ?)")) {
                  for (ConsumerRecord<String, String> record : polled.records(partition)) {
                    insert.setString(1, record.value());
                    insert.setString(2, variant);
                    insert.executeUpdate();
                  }
                }
                connection.commit();
                connection.setAutoCommit(true);
              }
            }
            done += polled.count();
          } else {
            for (ConsumerRecord<String, String> record : polled) {
              if (processor != null) {
                processor.process(record, insertRow);
              } else if (variant.equals("plain")) {
                plainInsert.setString(1, record.value());
                plainInsert.setString(2, variant);
                plainInsert.executeUpdate(); // auto-commit: one commit per record
              } else { // bare-tx: the insert in a transaction of its own, as idemkey's is
                try (Connection connection = pool.getConnection()) {
                  connection.setAutoCommit(false);
                  try (PreparedStatement insert =
                      connection.prepareStatement("INSERT INTO ledger VALUES (?, ?)")) {
                    insert.setString(1, record.value());
                    insert.setString(2, variant);
                    insert.executeUpdate();
                  }
                  connection.commit();
                  connection.setAutoCommit(true);
                }
              }
              done++;
            }
          }
          consumer.commitAsync();
        }
      }
      return done / ((System.nanoTime() - started) / 1e9);
    }
  }

  /**
   * Runs {@code count} offsets through the execution layer with offset keys on {@code
   * partitions} partitions (the record processor's scopes, without the broker: the store's rows
   * do not depend on it) and prints the store's rows: in transactional mode, one record at a
   * time as {@link RecordProcessor#process} runs them; then without a transaction, where each
   * offset is claimed, once their ttl has passed and the purge has run.
   */
  static void storeRowsAfter(DataSource dataSource, int count, int partitions) throws Exception {
    for (boolean transactional : new boolean[] {true, false}) {
      TableName table =
          new TableName("public", "million_offsets_" + (transactional ? "tx" : "claims"));
      Migrations.migrate(dataSource, table);
      Duration ttl = Duration.ofSeconds(2);
      com.zaxxer.hikari.HikariConfig poolConfig = new com.zaxxer.hikari.HikariConfig();
      poolConfig.setDataSource(dataSource);
      poolConfig.setMaximumPoolSize(partitions + 2);
      // Rows are counted here, not speed: commits need not wait for the disk.
      poolConfig.setConnectionInitSql("SET synchronous_commit = off");
      long started = System.nanoTime();
      try (com.zaxxer.hikari.HikariDataSource pool = new com.zaxxer.hikari.HikariDataSource(
              poolConfig);
          IdempotencyStore store = StoreBuilder.postgres(pool).tableName(table).migrate(false)
              .sequenceKeys(true).lease(Duration.ofSeconds(1)).ttl(ttl)
              .purgeInterval(Duration.ZERO).purgeBatchSize(10_000).build();
          IdempotentExecutor executor = IdempotentExecutor.builder(store)
              .lease(Duration.ofSeconds(1)).transactional(transactional).build()) {
        List<Thread> threads = new ArrayList<>();
        for (int p = 0; p < partitions; p++) {
          int partition = p;
          Thread thread = new Thread(() -> {
            String scope = "offsets:payments/" + partition + "@ledger";
            for (long offset = 0; offset < count / partitions; offset++) {
              executor.executeInOrder(
                  new io.idemkey.store.IdempotencyKey(scope, Long.toString(offset)),
                  io.idemkey.execution.Codec.none(), attempt -> true);
            }
          });
          thread.start();
          threads.add(thread);
        }
        for (Thread thread : threads) {
          thread.join();
        }
        String mode = transactional ? "transactional" : "not transactional";
        System.out.printf(
            "%s: %d offsets on %d partitions in %.0f s: %d key rows + %d floor rows%n",
            mode, (long) (count / partitions) * partitions, partitions,
            (System.nanoTime() - started) / 1e9, rows(table.qualifiedTable(), dataSource),
            rows(table.qualifiedFloorsTable(), dataSource));
        Thread.sleep(ttl.toMillis() + 1_000);
        int purged;
        long total = 0;
        do {
          purged = store.purgeExpired();
          total += purged;
        } while (purged > 0);
        System.out.printf("%s, after the ttl and the purge (%d purged): %d key rows + %d floor"
            + " rows%n", mode, total, rows(table.qualifiedTable(), dataSource),
            rows(table.qualifiedFloorsTable(), dataSource));
      }
    }
  }

  static long rows(String table, DataSource dataSource) throws SQLException {
    return count("SELECT count(*) FROM " + table, dataSource);
  }

  static void produce(String bootstrap, String topic, int records) {
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(Map.of(
        "bootstrap.servers", bootstrap,
        "key.serializer", StringSerializer.class.getName(),
        "value.serializer", StringSerializer.class.getName(),
        "linger.ms", "10"))) {
      for (int i = 0; i < records; i++) {
        ProducerRecord<String, String> record =
            new ProducerRecord<>(topic, "customer-" + (i % 1000), "pay-" + i);
        record.headers().add("Idempotency-Key", ("evt-" + i).getBytes(StandardCharsets.UTF_8));
        producer.send(record);
      }
      producer.flush();
    }
  }

  static void execute(DataSource dataSource, String sql) throws SQLException {
    try (Connection c = dataSource.getConnection(); Statement s = c.createStatement()) {
      s.execute(sql);
    }
  }

  static long count(String sql, DataSource dataSource) throws SQLException {
    try (Connection c = dataSource.getConnection(); Statement s = c.createStatement();
        ResultSet r = s.executeQuery(sql)) {
      r.next();
      return r.getLong(1);
    }
  }

  static double median(List<Double> values) {
    List<Double> sorted = new ArrayList<>(values);
    sorted.sort(null);
    return sorted.get(sorted.size() / 2);
  }

  static String stringArgument(String[] args, String name, String fallback) {
    for (int i = 0; i + 1 < args.length; i++) {
      if (args[i].equals(name)) {
        return args[i + 1];
      }
    }
    return fallback;
  }

  static int intArgument(String[] args, String name, int fallback) {
    for (int i = 0; i + 1 < args.length; i++) {
      if (args[i].equals(name)) {
        return Integer.parseInt(args[i + 1].replace("_", ""));
      }
    }
    return fallback;
  }
}
