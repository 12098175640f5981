package io.idemkey.kafka;

import io.idemkey.execution.Attempt;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * What a consumer does with a record for its effects alone (a ledger row written), once per key
 * ({@link RecordProcessor#process(ConsumerRecord, RecordEffect)}).
 *
 * @param <K> the record's key
 * @param <V> the record's value
 * @param <E> what it may throw
 */
@FunctionalInterface
public interface RecordEffect<K, V, E extends Exception> {

  /**
   * Handles {@code record}, holding its key, as {@link RecordHandler#handle}.
   *
   * @throws E when it fails: nothing is stored, its writes roll back in transactional mode
   */
  void accept(ConsumerRecord<K, V> record, Attempt attempt) throws E;
}
