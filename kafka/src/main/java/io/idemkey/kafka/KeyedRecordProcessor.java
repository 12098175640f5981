package io.idemkey.kafka;

import io.idemkey.execution.Codec;
import io.idemkey.execution.IdempotentExecutor;
import io.idemkey.execution.Outcome;
import io.idemkey.store.Fingerprint;
import io.idemkey.store.IdempotencyKey;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.TopicPartition;

/**
 * The {@link RecordProcessor}: a record's key from its {@link RecordKeys}, run through the
 * execution layer. Immutable and thread-safe.
 */
final class KeyedRecordProcessor implements RecordProcessor {

  private final IdempotentExecutor executor;
  private final String group;
  private final RecordKeys keys;

  KeyedRecordProcessor(IdempotentExecutor executor, String group, RecordKeys keys) {
    this.executor = executor;
    this.group = group;
    this.keys = keys;
  }

  @Override
  public <K, V, T, E extends Exception> Outcome<T> process(
      ConsumerRecord<K, V> record, Codec<T> codec, RecordHandler<K, V, T, E> handler) throws E {
    Objects.requireNonNull(record, "record");
    Objects.requireNonNull(handler, "handler");
    IdempotencyKey key = keys.keyOf(group, record);
    // A record's value is not compared (the consumer sees it deserialised): the key alone says
    // "same event".
    return keys.sequence()
        ? executor.executeInOrder(key, codec, attempt -> handler.handle(record, attempt))
        : executor.execute(
            key, Fingerprint.ofKey(key), codec, attempt -> handler.handle(record, attempt));
  }

  @Override
  public <K, V, E extends Exception> int processAll(
      Iterable<ConsumerRecord<K, V>> records, RecordEffect<K, V, E> effect) throws E {
    Objects.requireNonNull(records, "records");
    Objects.requireNonNull(effect, "effect");
    if (!keys.sequence()) {
      int ran = 0;
      for (ConsumerRecord<K, V> record : records) {
        if (process(record, effect).kind() == Outcome.Kind.EXECUTED) {
          ran++;
        }
      }
      return ran;
    }
    // The records of each partition, in the order polled: one run of keys in order each.
    Map<TopicPartition, List<ConsumerRecord<K, V>>> byPartition = new LinkedHashMap<>();
    for (ConsumerRecord<K, V> record : records) {
      Objects.requireNonNull(record, "record");
      byPartition.computeIfAbsent(new TopicPartition(record.topic(), record.partition()),
          p -> new ArrayList<>()).add(record);
    }
    int ran = 0;
    for (List<ConsumerRecord<K, V>> polled : byPartition.values()) {
      List<IdempotencyKey> inOrder = new ArrayList<>(polled.size());
      for (ConsumerRecord<K, V> record : polled) {
        inOrder.add(keys.keyOf(group, record));
      }
      ran += executor.executeInOrder(
          inOrder, (index, attempt) -> effect.accept(polled.get(index), attempt));
    }
    return ran;
  }

  @Override
  public String group() {
    return group;
  }

  @Override
  public RecordKeys keys() {
    return keys;
  }

  @Override
  public String toString() {
    return "RecordProcessor[group=" + group + ", keys=" + keys + "]";
  }
}
