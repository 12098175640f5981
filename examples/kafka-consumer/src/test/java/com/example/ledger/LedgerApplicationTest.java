package com.example.ledger;

import static org.assertj.core.api.Assertions.assertThat;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.SpringApplication;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.jdbc.core.JdbcTemplate;
import org.springframework.jdbc.datasource.DriverManagerDataSource;
import org.springframework.kafka.test.EmbeddedKafkaKraftBroker;

/**
 * The example on a real PostgreSQL and a real Kafka broker: three payment events make three
 * ledger rows; the group's offsets then rewound, a restarted consumer gets all three again and
 * writes nothing.
 */
class LedgerApplicationTest {

  static final EmbeddedPostgres POSTGRES = startPostgres();
  static final EmbeddedKafkaKraftBroker KAFKA = new EmbeddedKafkaKraftBroker(1, 1, "payments");

  static {
    KAFKA.afterPropertiesSet();
  }

  static EmbeddedPostgres startPostgres() {
    try {
      return EmbeddedPostgres.builder().start();
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  @AfterAll
  static void stop() throws Exception {
    KAFKA.destroy();
    POSTGRES.close();
  }

  static String jdbcUrl() {
    return "jdbc:postgresql://localhost:" + POSTGRES.getPort() + "/postgres";
  }

  static ConfigurableApplicationContext start() {
    return SpringApplication.run(LedgerApplication.class,
        "--spring.datasource.url=" + jdbcUrl(),
        "--spring.datasource.username=postgres",
        "--spring.datasource.password=postgres",
        "--spring.kafka.bootstrap-servers=" + KAFKA.getBrokersAsString());
  }

  static int ledgerRows() {
    Integer rows = new JdbcTemplate(new DriverManagerDataSource(jdbcUrl(), "postgres", "postgres"))
        .queryForObject("SELECT count(*) FROM ledger", Integer.class);
    return rows == null ? 0 : rows;
  }

  static void awaitRows(int rows) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (ledgerRows() < rows && System.nanoTime() < deadline) {
      Thread.sleep(100);
    }
  }

  static void awaitCommittedOffset(long offset) throws Exception {
    try (Admin admin = Admin.create(Map.of("bootstrap.servers", KAFKA.getBrokersAsString()))) {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      long committed = -1;
      while (committed < offset && System.nanoTime() < deadline) {
        OffsetAndMetadata found = admin.listConsumerGroupOffsets("ledger")
            .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS)
            .get(new TopicPartition("payments", 0));
        committed = found == null ? -1 : found.offset();
        Thread.sleep(100);
      }
      assertThat(committed).as("the group's committed offset").isEqualTo(offset);
    }
  }

  @Test
  void paymentEvents_deliveredAgainAfterARestart_oneLedgerRowEach() throws Exception {
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(Map.of(
        "bootstrap.servers", KAFKA.getBrokersAsString(),
        "key.serializer", StringSerializer.class.getName(),
        "value.serializer", StringSerializer.class.getName()))) {
      producer.send(new ProducerRecord<>("payments", "c1", "pay-1,1250,EUR"));
      producer.send(new ProducerRecord<>("payments", "c2", "pay-2,990,USD"));
      producer.send(new ProducerRecord<>("payments", "c1", "pay-3,15000,EUR"));
    }
    try (ConfigurableApplicationContext first = start()) {
      awaitRows(3);
      assertThat(first.getBean(PaymentEventListener.class).handled()).isEqualTo(3);
    }
    // As if the consumer had crashed before committing its offsets: all three come again.
    try (Admin admin = Admin.create(Map.of("bootstrap.servers", KAFKA.getBrokersAsString()))) {
      admin.alterConsumerGroupOffsets("ledger",
          Map.of(new TopicPartition("payments", 0), new OffsetAndMetadata(0))).all()
          .get(30, TimeUnit.SECONDS);
    }

    try (ConfigurableApplicationContext second = start()) {
      awaitCommittedOffset(3); // the three were delivered again, and passed
      assertThat(second.getBean(PaymentEventListener.class).handled()).isZero();
    }
    assertThat(ledgerRows()).isEqualTo(3);
  }
}
