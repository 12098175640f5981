package io.idemkey.kafka;

import io.idemkey.store.IdempotencyKey;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Where a record's idempotency key comes from: its place in the log ({@link #offsets()}) or a
 * header its producer set ({@link #header(String)}).
 *
 * <p>Implementations are immutable and thread-safe.
 */
public interface RecordKeys {

  /**
   * The record's place in the log: the scope is (consumer group, topic, partition) and the key
   * is the offset, a sequence key (SPEC §13). Needs a store built with {@code
   * StoreBuilder.sequenceKeys(true)}, on a table of its own. In transactional mode a partition
   * costs one row, its floor, the highest offset handled, raised in each record's commit, and no
   * row per record; without a transaction each record is claimed and kept for {@code ttl}, then
   * folded into the floor. A redelivered record is skipped. A partition's records are handled in
   * order, one at a time. Covers redeliveries of one record (a crash before the offset commit, a
   * rebalance), not a producer that sent the same event twice: that is two records.
   */
  static RecordKeys offsets() {
    return OffsetKeys.INSTANCE;
  }

  /**
   * An opaque key the producer set in header {@code name} (UTF-8, 1 to 255 characters), scoped
   * by (consumer group, topic): kept for {@code ttl}, and a record with the same key gets the
   * stored result. Covers a producer that sent the same event twice, as well as redeliveries.
   *
   * @throws IllegalArgumentException if {@code name} is empty
   */
  static RecordKeys header(String name) {
    return new HeaderKeys(name);
  }

  /**
   * The key of {@code record} as consumer group {@code group} processes it.
   *
   * @throws InvalidRecordKeyException if the record carries no usable key (a header missing,
   *     repeated, empty or too long)
   */
  IdempotencyKey keyOf(String group, ConsumerRecord<?, ?> record);

  /** Whether the keys are sequence keys, for a store built with {@code sequenceKeys(true)}. */
  boolean sequence();
}
