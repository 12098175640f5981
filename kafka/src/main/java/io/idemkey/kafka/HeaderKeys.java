package io.idemkey.kafka;

import io.idemkey.store.IdempotencyKey;
import java.nio.charset.StandardCharsets;
import java.util.Iterator;
import java.util.Objects;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.header.Header;

/**
 * Keys a producer set in a header: scope {@code header:TOPIC@GROUP}, key the header's value as
 * UTF-8. Immutable.
 */
final class HeaderKeys implements RecordKeys {

  private final String name;

  HeaderKeys(String name) {
    Objects.requireNonNull(name, "name");
    if (name.isEmpty()) {
      throw new IllegalArgumentException("the key header's name must not be empty");
    }
    this.name = name;
  }

  @Override
  public IdempotencyKey keyOf(String group, ConsumerRecord<?, ?> record) {
    Iterator<Header> headers = record.headers().headers(name).iterator();
    if (!headers.hasNext()) {
      throw invalid(record, "has no header " + name);
    }
    Header header = headers.next();
    if (headers.hasNext()) {
      throw invalid(record, "has header " + name + " more than once");
    }
    byte[] value = header.value();
    String key = value == null ? "" : new String(value, StandardCharsets.UTF_8);
    try {
      return new IdempotencyKey("header:" + record.topic() + "@" + group, key);
    } catch (IllegalArgumentException e) {
      throw invalid(record, "has an unusable header " + name + ": " + e.getMessage());
    }
  }

  private static InvalidRecordKeyException invalid(ConsumerRecord<?, ?> record, String what) {
    return new InvalidRecordKeyException("the record at " + record.topic() + "-"
        + record.partition() + "@" + record.offset() + " " + what);
  }

  @Override
  public boolean sequence() {
    return false;
  }

  @Override
  public String toString() {
    return "header " + name;
  }
}
