package com.example.ledger;

import java.util.concurrent.atomic.AtomicInteger;
import org.springframework.jdbc.core.JdbcTemplate;
import org.springframework.kafka.annotation.KafkaListener;
import org.springframework.stereotype.Component;

/**
 * Writes a ledger row for each payment event, a value {@code PAYMENT_ID,AMOUNT,CURRENCY}. Plain
 * Spring: idemkey's starter runs it once per record, and in transactional mode the insert
 * commits together with the record's settlement, so a crash at any instant leaves both or
 * neither.
 */
@Component
public class PaymentEventListener {

  private final JdbcTemplate jdbc;
  private final AtomicInteger handled = new AtomicInteger();

  public PaymentEventListener(JdbcTemplate jdbc) {
    this.jdbc = jdbc;
  }

  @KafkaListener(topics = "${ledger.topic:payments}")
  public void onPayment(String event) {
    String[] fields = event.split(",");
    jdbc.update("INSERT INTO ledger (payment, amount, currency) VALUES (?, ?, ?)",
        fields[0], Long.parseLong(fields[1]), fields[2]);
    handled.incrementAndGet();
  }

  /** Events this instance handled (for the test). */
  public int handled() {
    return handled.get();
  }
}
