package io.idemkey.spring;

import io.idemkey.kafka.RecordProcessor;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.springframework.kafka.listener.AcknowledgingConsumerAwareMessageListener;
import org.springframework.kafka.listener.ListenerType;
import org.springframework.kafka.listener.ListenerUtils;
import org.springframework.kafka.listener.MessageListener;
import org.springframework.kafka.support.Acknowledgment;

/**
 * A {@code @KafkaListener}'s record listener run through a {@link RecordProcessor}: the listener
 * method is invoked once per record key, holding the key (in transactional mode inside the
 * transaction that settles the record). A record whose key was handled is not passed on; what
 * the processor throws (another consumer still holds the key, the store is away) reaches the
 * container's error handler, which delivers the record again.
 *
 * <p>Thread-safe as its delegate is: each container thread calls it for its own records.
 */
final class IdempotentRecordListener
    implements AcknowledgingConsumerAwareMessageListener<Object, Object> {

  private final RecordProcessor processor;
  private final MessageListener<Object, Object> delegate;
  private final ListenerType type;

  IdempotentRecordListener(RecordProcessor processor, MessageListener<Object, Object> delegate) {
    this.processor = processor;
    this.delegate = delegate;
    this.type = ListenerUtils.determineListenerType(delegate);
  }

  @Override
  public void onMessage(
      ConsumerRecord<Object, Object> record, Acknowledgment acknowledgment,
      Consumer<?, ?> consumer) {
    processor.process(record, (r, attempt) -> {
      switch (type) {
        case ACKNOWLEDGING_CONSUMER_AWARE -> delegate.onMessage(r, acknowledgment, consumer);
        case ACKNOWLEDGING -> delegate.onMessage(r, acknowledgment);
        case CONSUMER_AWARE -> delegate.onMessage(r, consumer);
        default -> delegate.onMessage(r);
      }
    });
  }

  @Override
  public void onMessage(ConsumerRecord<Object, Object> record) {
    onMessage(record, null, null);
  }
}
