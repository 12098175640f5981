package io.idemkey.kafka;

import io.idemkey.store.IdempotencyKey;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Keys from a record's place in the log: scope {@code offsets:TOPIC/PARTITION@GROUP}, key the
 * offset. A topic name has no {@code /} and a partition no {@code @}, so no two places share a
 * scope. Immutable.
 */
final class OffsetKeys implements RecordKeys {

  static final OffsetKeys INSTANCE = new OffsetKeys();

  private OffsetKeys() {}

  @Override
  public IdempotencyKey keyOf(String group, ConsumerRecord<?, ?> record) {
    return new IdempotencyKey(
        "offsets:" + record.topic() + "/" + record.partition() + "@" + group,
        Long.toString(record.offset()));
  }

  @Override
  public boolean sequence() {
    return true;
  }

  @Override
  public String toString() {
    return "offsets";
  }
}
