package io.idemkey.kafka;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.springframework.kafka.test.EmbeddedKafkaKraftBroker;

/**
 * The Kafka broker the tests run against: one Apache Kafka broker in KRaft mode, in this JVM,
 * started on first use and stopped at exit, listening on 127.0.0.1. Group timeouts are short, so
 * that a consumer killed without leaving its group gives its partitions up within seconds.
 *
 * <p>Tests keep apart with a {@link #freshTopic(int)} and a group of their own. Thread-safe.
 */
final class TestBroker {

  /** The shortest session a consumer may ask for; the tests' consumers use 2 s. */
  static final int MIN_SESSION_MILLIS = 1_000;

  private static EmbeddedKafkaKraftBroker broker;

  private TestBroker() {}

  static synchronized String bootstrapServers() {
    if (broker == null) {
      EmbeddedKafkaKraftBroker started = new EmbeddedKafkaKraftBroker(1, 1);
      started.brokerProperties(Map.of(
          "group.min.session.timeout.ms", Integer.toString(MIN_SESSION_MILLIS),
          "group.initial.rebalance.delay.ms", "0",
          "offsets.topic.num.partitions", "3"));
      started.afterPropertiesSet();
      Runtime.getRuntime().addShutdownHook(new Thread(started::destroy));
      broker = started;
    }
    return broker.getBrokersAsString();
  }

  /** A new topic with {@code partitions} partitions. */
  static String freshTopic(int partitions) {
    String topic = "payments-" + UUID.randomUUID().toString().substring(0, 8);
    try (Admin admin = Admin.create(Map.of("bootstrap.servers", bootstrapServers()))) {
      admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1)))
          .all().get(30, TimeUnit.SECONDS);
    } catch (Exception e) {
      throw new IllegalStateException("could not create topic " + topic, e);
    }
    return topic;
  }

  static KafkaProducer<String, String> producer() {
    Properties properties = new Properties();
    properties.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers());
    properties.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    properties.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    properties.put(ProducerConfig.ACKS_CONFIG, "all");
    properties.put(ProducerConfig.LINGER_MS_CONFIG, "5");
    return new KafkaProducer<>(properties);
  }

  /** Sends {@code value} keyed by {@code key}, with header {@code Idempotency-Key} if given. */
  static void send(
      KafkaProducer<String, String> producer, String topic, String key, String value,
      String headerKey) {
    ProducerRecord<String, String> record = new ProducerRecord<>(topic, key, value);
    if (headerKey != null) {
      record.headers().add("Idempotency-Key", headerKey.getBytes(StandardCharsets.UTF_8));
    }
    producer.send(record);
  }

  /**
   * Consumer settings for the tests: no auto-commit, earliest offsets, short sessions, so that a
   * rebalance after a consumer is killed happens within seconds.
   */
  static Properties consumerProperties(String bootstrapServers, String group) {
    Properties properties = new Properties();
    properties.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
    properties.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    properties.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG,
        StringDeserializer.class.getName());
    properties.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG,
        StringDeserializer.class.getName());
    properties.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    properties.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    properties.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "2000");
    properties.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
    properties.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "50");
    return properties;
  }

  static KafkaConsumer<String, String> consumer(String group) {
    return new KafkaConsumer<>(consumerProperties(bootstrapServers(), group));
  }

  static Duration pollTimeout() {
    return Duration.ofMillis(200);
  }
}
