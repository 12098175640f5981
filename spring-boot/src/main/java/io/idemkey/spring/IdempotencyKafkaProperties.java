package io.idemkey.spring;

import io.idemkey.execution.ExecutorBuilder;
import io.idemkey.kafka.RecordKeys;
import io.idemkey.store.StoreBuilder;
import java.time.Duration;
import java.util.List;
import org.springframework.boot.convert.DurationStyle;
import org.springframework.core.env.Environment;

/**
 * The {@code idempotency.kafka.*} properties of Spring Kafka listener support, read and validated
 * once: a bad value fails at start-up naming the property. Immutable.
 *
 * @param keys where a record's key comes from
 * @param table the keys' table (in schema {@code idempotency.schema})
 * @param transactional whether a listener's JDBC writes commit with the record's settlement
 * @param lease the in-flight lease, renewed while a listener runs
 * @param ttl how long a record's settlement is kept (offset keys: then folded into the floor)
 * @param waitTimeout the longest wait for a record another consumer still handles
 */
record IdempotencyKafkaProperties(
    RecordKeys keys, String table, boolean transactional, Duration lease, Duration ttl,
    Duration waitTimeout) {

  static final String ENABLED = IdempotencyProperties.KAFKA_ENABLED;
  static final String KEYS = IdempotencyProperties.KAFKA_KEYS;
  static final String TABLE = IdempotencyProperties.KAFKA_TABLE;
  static final String TRANSACTIONAL = IdempotencyProperties.KAFKA_TRANSACTIONAL;
  static final String LEASE = IdempotencyProperties.KAFKA_LEASE;
  static final String TTL = IdempotencyProperties.KAFKA_TTL;
  static final String WAIT_TIMEOUT = IdempotencyProperties.KAFKA_WAIT_TIMEOUT;

  /** The table of offset keys by default: sequence keys need a table of their own. */
  static final String DEFAULT_OFFSETS_TABLE = "idempotency_offsets";
  /** The table of header keys by default. */
  static final String DEFAULT_HEADER_TABLE = "idempotency_message_keys";

  /**
   * Reads the properties.
   *
   * @throws IdempotencyPropertyException naming the property on a bad value
   */
  static IdempotencyKafkaProperties read(Environment environment) {
    String keysText = environment.getProperty(KEYS, "offsets").trim();
    RecordKeys keys;
    if (keysText.equals("offsets")) {
      keys = RecordKeys.offsets();
    } else if (keysText.startsWith("header:") && keysText.length() > "header:".length()) {
      keys = RecordKeys.header(keysText.substring("header:".length()));
    } else {
      throw invalid(KEYS, keysText, "must be offsets or header:NAME");
    }
    String table = environment.getProperty(TABLE,
        keys.sequence() ? DEFAULT_OFFSETS_TABLE : DEFAULT_HEADER_TABLE).trim();
    if (!table.matches("[a-z_][a-z0-9_]{0,62}")) {
      throw invalid(TABLE, table, "must be a lower-case SQL name of at most 63 characters");
    }
    String transactionalText = environment.getProperty(TRANSACTIONAL, "false").trim();
    if (!transactionalText.equals("true") && !transactionalText.equals("false")) {
      throw invalid(TRANSACTIONAL, transactionalText, "must be true or false");
    }
    Duration lease = duration(environment, LEASE, StoreBuilder.DEFAULT_LEASE);
    Duration ttl = duration(environment, TTL, StoreBuilder.DEFAULT_TTL);
    Duration waitTimeout =
        duration(environment, WAIT_TIMEOUT, ExecutorBuilder.DEFAULT_WAIT_TIMEOUT);
    if (lease.compareTo(Duration.ofSeconds(1)) < 0) {
      throw invalid(LEASE, lease.toString(), "must be at least 1s, to be renewed in time");
    }
    if (ttl.compareTo(lease) < 0) {
      throw invalid(TTL, ttl.toString(), "must not be shorter than " + LEASE + " (" + lease + ")");
    }
    if (waitTimeout.isNegative()) {
      throw invalid(WAIT_TIMEOUT, waitTimeout.toString(), "must not be negative");
    }
    return new IdempotencyKafkaProperties(keys, table, Boolean.parseBoolean(transactionalText),
        lease, ttl, waitTimeout);
  }

  private static Duration duration(Environment environment, String name, Duration fallback) {
    String text = environment.getProperty(name);
    if (text == null) {
      return fallback;
    }
    try {
      return DurationStyle.detectAndParse(text.trim());
    } catch (IllegalArgumentException e) {
      throw invalid(name, text, "must be a duration such as 30s or PT30S");
    }
  }

  private static IdempotencyPropertyException invalid(String name, String value, String rule) {
    return new IdempotencyPropertyException(
        List.of(new IdempotencyPropertyException.Source(name, value, null)),
        name + " " + rule + ", was '" + value + "'", null);
  }
}
