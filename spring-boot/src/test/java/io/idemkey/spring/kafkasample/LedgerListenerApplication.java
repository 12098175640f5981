package io.idemkey.spring.kafkasample;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.jdbc.core.JdbcTemplate;
import org.springframework.kafka.annotation.KafkaListener;
import org.springframework.stereotype.Component;

/**
 * A consumer application for the starter's Kafka tests: one {@code @KafkaListener} that writes a
 * ledger row per payment event with JdbcTemplate, on the application's DataSource. A value that
 * starts with {@code fail-once} makes the listener throw after its insert, the first time only.
 */
@SpringBootApplication
public class LedgerListenerApplication {

  /** The listener. */
  @Component
  public static class LedgerListener {
    private final JdbcTemplate jdbc;
    private final AtomicInteger invocations = new AtomicInteger();
    private final Set<String> failed = ConcurrentHashMap.newKeySet();

    public LedgerListener(JdbcTemplate jdbc) {
      this.jdbc = jdbc;
    }

    @KafkaListener(topics = "${ledger.topic}", groupId = "ledger")
    public void onPayment(ConsumerRecord<String, String> record) {
      invocations.incrementAndGet();
      jdbc.update("INSERT INTO kafka_ledger (payment, topic) VALUES (?, ?)", record.value(),
          record.topic());
      if (record.value().startsWith("fail-once") && failed.add(record.value())) {
        throw new IllegalStateException("the listener failed after its insert");
      }
    }

    public int invocations() {
      return invocations.get();
    }
  }
}
