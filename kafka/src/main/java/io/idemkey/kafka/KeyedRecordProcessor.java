package io.idemkey.kafka;

import io.idemkey.execution.Codec;
import io.idemkey.execution.IdempotentExecutor;
import io.idemkey.execution.Outcome;
import io.idemkey.store.Fingerprint;
import io.idemkey.store.IdempotencyKey;
import java.nio.charset.StandardCharsets;
import java.util.Objects;
import org.apache.kafka.clients.consumer.ConsumerRecord;

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
    return executor.execute(key, fingerprint(key), codec, attempt -> handler.handle(record, attempt));
  }

  /**
   * The fingerprint of a key: its own digest, the same for every delivery of it. A record's
   * value is not compared (the consumer sees it deserialised); the key alone says "same event".
   */
  static Fingerprint fingerprint(IdempotencyKey key) {
    return Fingerprint.of(
        "idemkey-record".getBytes(StandardCharsets.UTF_8),
        key.scope().getBytes(StandardCharsets.UTF_8),
        key.key().getBytes(StandardCharsets.UTF_8));
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
