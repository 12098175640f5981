package io.idemkey.kafka;

import io.idemkey.execution.Codec;
import io.idemkey.execution.IdempotentExecutor;
import io.idemkey.execution.InProgressException;
import io.idemkey.execution.LeaseLostException;
import io.idemkey.execution.Outcome;
import io.idemkey.store.StoreUnavailableException;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Handles each Kafka record's key once, for a plain {@code KafkaConsumer} loop: the record's key
 * ({@link RecordKeys}) is claimed in the store, the handler runs holding it (lease renewed,
 * fencing token, in transactional mode one commit for the handler's writes and the record's
 * settlement), and a record delivered again is skipped or gets the stored result.
 *
 * <pre>{@code
 * RecordProcessor payments = RecordProcessor.builder(executor)
 *     .group("ledger").keys(RecordKeys.offsets()).build();
 * while (running) {
 *   for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(500))) {
 *     payments.process(record, (r, attempt) -> insertLedgerRow(attempt.connection().orElseThrow(), r));
 *   }
 *   consumer.commitAsync(); // an optimisation: the store, not the offset, says what was done
 * }
 * }</pre>
 *
 * <p>A consumer that lost its partition in a rebalance and still runs a record holds that
 * record's key until it settles it, with its lease renewed: the partition's new owner waits for
 * it (bounded by the executor's wait timeout) and then skips the record. If the old consumer
 * stalls beyond its lease (a long pause), the new owner takes the key over, and the old one's
 * settlement is refused by the fencing token: {@link LeaseLostException}, its writes rolled
 * back.
 *
 * <p>Thread-safe: records of different keys may be processed at once.
 */
public interface RecordProcessor {

  /** A builder of a processor over {@code executor}. */
  static RecordProcessorBuilder builder(IdempotentExecutor executor) {
    return new RecordProcessorBuilder(executor);
  }

  /**
   * Runs {@code handler} for {@code record} unless its key was handled: then returns the stored
   * result ({@link Outcome.Kind#REPLAYED}), or, for an offset handled long ago whose record was
   * purged, nothing ({@link Outcome.Kind#USED_UP}).
   *
   * @throws E what the handler throws: its key released, its writes rolled back
   * @throws InvalidRecordKeyException if the record carries no usable key
   * @throws InProgressException if another consumer still holds the record's key after the
   *     executor's wait: handle the record again later (seek back to it)
   * @throws LeaseLostException if this consumer's lease was taken over while it ran: its result
   *     is not stored (its writes rolled back in transactional mode); the new holder's counts
   * @throws StoreUnavailableException if the store cannot be reached: handle it again later
   */
  <K, V, T, E extends Exception> Outcome<T> process(
      ConsumerRecord<K, V> record, Codec<T> codec, RecordHandler<K, V, T, E> handler) throws E;

  /**
   * Runs {@code effect} for {@code record} unless its key was handled, as {@link
   * #process(ConsumerRecord, Codec, RecordHandler)} with no result.
   *
   * @throws E what the effect throws
   */
  default <K, V, E extends Exception> Outcome<Boolean> process(
      ConsumerRecord<K, V> record, RecordEffect<K, V, E> effect) throws E {
    return process(record, Codec.none(), (r, attempt) -> {
      effect.accept(r, attempt);
      return Boolean.TRUE;
    });
  }

  /**
   * Handles {@code records} (a poll's) as {@link #process(ConsumerRecord, RecordEffect)} handles
   * each, and with offset keys in transactional mode the records of each partition in one
   * transaction: their effects and the partition's floor commit once, so a poll costs one commit
   * per partition instead of one per record. An effect that throws rolls back every record of
   * its partition's transaction (and the partitions handled before it stay committed): seek back
   * to the partition's first record not committed, or handle its records one by one to find the
   * failing one. With header keys, or without a transaction, each record is handled by itself.
   *
   * @return how many records' effects ran and committed
   * @throws E what an effect throws
   * @throws IllegalArgumentException if a partition's records are not in rising offsets
   */
  <K, V, E extends Exception> int processAll(
      Iterable<ConsumerRecord<K, V>> records, RecordEffect<K, V, E> effect) throws E;

  /** The consumer group whose records this processor handles. */
  String group();

  /** Where the keys come from. */
  RecordKeys keys();
}
