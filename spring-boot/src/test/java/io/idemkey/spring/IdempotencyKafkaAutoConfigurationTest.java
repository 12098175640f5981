package io.idemkey.spring;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.spring.kafkasample.LedgerListenerApplication;
import io.idemkey.store.TestDatabase;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.WebApplicationType;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.jdbc.core.JdbcTemplate;
import org.springframework.kafka.test.EmbeddedKafkaKraftBroker;

/**
 * The starter's {@code @KafkaListener} support on a real broker (KRaft, in-process) and a real
 * PostgreSQL: a consumer application (no web server) whose listener writes a ledger row with
 * JdbcTemplate, with {@code idempotency.kafka.transactional=true}.
 */
class IdempotencyKafkaAutoConfigurationTest {

  static final EmbeddedKafkaKraftBroker BROKER = new EmbeddedKafkaKraftBroker(1, 2);

  static {
    BROKER.afterPropertiesSet();
  }

  @AfterAll
  static void stopBroker() {
    BROKER.destroy();
  }

  static ConfigurableApplicationContext start(String topic, String... properties) {
    SpringApplication application = new SpringApplication(LedgerListenerApplication.class);
    application.setWebApplicationType(WebApplicationType.NONE);
    List<String> arguments = new java.util.ArrayList<>(List.of(
        "--spring.datasource.url=" + TestDatabase.jdbcUrl(),
        "--spring.datasource.username=" + TestDatabase.user(),
        "--spring.datasource.password=" + TestDatabase.password(),
        "--spring.kafka.bootstrap-servers=" + BROKER.getBrokersAsString(),
        "--spring.kafka.consumer.auto-offset-reset=earliest",
        "--spring.kafka.consumer.key-deserializer=" + StringDeserializerName.NAME,
        "--spring.kafka.consumer.value-deserializer=" + StringDeserializerName.NAME,
        "--ledger.topic=" + topic,
        "--idempotency.kafka.enabled=true",
        "--idempotency.kafka.transactional=true",
        "--idempotency.kafka.table=k_" + UUID.randomUUID().toString().replace("-", "")
            .substring(0, 12)));
    for (String property : properties) {
      arguments.add("--" + property);
    }
    return application.run(arguments.toArray(String[]::new));
  }

  /** The deserializer's class name. */
  static final class StringDeserializerName {
    static final String NAME = org.apache.kafka.common.serialization.StringDeserializer.class
        .getName();
  }

  static void produce(String topic, String... headerKeysAndValues) {
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(Map.of(
        "bootstrap.servers", BROKER.getBrokersAsString(),
        "key.serializer", StringSerializer.class.getName(),
        "value.serializer", StringSerializer.class.getName()))) {
      for (int i = 0; i < headerKeysAndValues.length; i += 2) {
        ProducerRecord<String, String> record =
            new ProducerRecord<>(topic, 0, "k", headerKeysAndValues[i + 1]);
        if (headerKeysAndValues[i] != null) {
          record.headers().add("Idempotency-Key",
              headerKeysAndValues[i].getBytes(StandardCharsets.UTF_8));
        }
        producer.send(record);
      }
      producer.flush();
    }
  }

  static void createLedger() {
    new JdbcTemplate(TestDatabase.dataSource()).execute(
        "CREATE TABLE IF NOT EXISTS kafka_ledger (payment text NOT NULL, topic text NOT NULL)");
  }

  static int rows(String topic) {
    Integer count = new JdbcTemplate(TestDatabase.dataSource()).queryForObject(
        "SELECT count(*) FROM kafka_ledger WHERE topic = ?", Integer.class, topic);
    return count == null ? 0 : count;
  }

  static void awaitInvocations(
      LedgerListenerApplication.LedgerListener listener, int invocations) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (listener.invocations() < invocations && System.nanoTime() < deadline) {
      Thread.sleep(100);
    }
    assertThat(listener.invocations()).as("listener invocations within 60 s")
        .isGreaterThanOrEqualTo(invocations);
  }

  @Test
  void kafkaListener_headerKeysEventSentTwice_oneLedgerRowAndTheListenerRunsOnce()
      throws Exception {
    createLedger();
    String topic = "payments-" + UUID.randomUUID().toString().substring(0, 8);
    BROKER.addTopics(topic);
    produce(topic, "evt-1", "pay-1", "evt-1", "pay-1", "evt-2", "pay-2");
    try (ConfigurableApplicationContext context =
        start(topic, "idempotency.kafka.keys=header:Idempotency-Key")) {
      LedgerListenerApplication.LedgerListener listener =
          context.getBean(LedgerListenerApplication.LedgerListener.class);
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      while (rows(topic) < 2 && System.nanoTime() < deadline) {
        Thread.sleep(100);
      }
      Thread.sleep(500); // the duplicate, had it been let through, would be written by now

      assertThat(rows(topic)).isEqualTo(2);
      assertThat(listener.invocations()).isEqualTo(2);
    }
  }

  @Test
  void kafkaListener_offsetKeysListenerFailsAfterItsInsert_rolledBackAndWrittenOnceOnRedelivery()
      throws Exception {
    createLedger();
    String topic = "payments-" + UUID.randomUUID().toString().substring(0, 8);
    BROKER.addTopics(topic);
    produce(topic, null, "fail-once-1", null, "pay-2");
    try (ConfigurableApplicationContext context = start(topic, "idempotency.kafka.keys=offsets")) {
      LedgerListenerApplication.LedgerListener listener =
          context.getBean(LedgerListenerApplication.LedgerListener.class);
      awaitInvocations(listener, 3); // the failure, its redelivery, and the second record
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (rows(topic) < 2 && System.nanoTime() < deadline) {
        Thread.sleep(100);
      }

      assertThat(rows(topic)).isEqualTo(2); // the failed run's insert was rolled back
    }
  }
}
