package io.idemkey.kafka;

import io.idemkey.execution.Attempt;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * What a consumer does with a record, once per key, returning a result that later deliveries of
 * the same key get back ({@link RecordProcessor#process(ConsumerRecord, io.idemkey.execution.Codec,
 * RecordHandler)}).
 *
 * @param <K> the record's key
 * @param <V> the record's value
 * @param <T> the result
 * @param <E> what it may throw
 */
@FunctionalInterface
public interface RecordHandler<K, V, T, E extends Exception> {

  /**
   * Handles {@code record}, holding its key. In transactional mode, write through {@code
   * attempt.connection()} (or a data source wrapped by {@code RequestTransactions.dataSource}):
   * those writes commit with the record's settlement, or not at all.
   *
   * @return the result, never null
   * @throws E when it fails: nothing is stored, its writes roll back in transactional mode, and
   *     the record is handled again when it is delivered again
   */
  T handle(ConsumerRecord<K, V> record, Attempt attempt) throws E;
}
