package com.example.payments;

import org.springframework.jdbc.core.JdbcTemplate;
import org.springframework.stereotype.Service;
import org.springframework.transaction.annotation.Transactional;

/**
 * Writes payments. With {@code idempotency.transactional=true} its transaction is the request's:
 * the row commits together with the stored response, or not at all.
 */
@Service
public class PaymentService {

  private final JdbcTemplate jdbc;

  public PaymentService(JdbcTemplate jdbc) {
    this.jdbc = jdbc;
  }

  /** Inserts a payment and returns its id; the amount must be positive. */
  @Transactional
  public long create(long amount, String currency) {
    Long id = jdbc.queryForObject(
        "INSERT INTO payments (amount, currency) VALUES (?, ?) RETURNING id", Long.class,
        Math.abs(amount), currency);
    if (amount <= 0) {
      // Checked after the insert on purpose: the exception rolls the insert back.
      throw new IllegalArgumentException("amount must be positive");
    }
    return id;
  }

  /** The number of payments stored. */
  @Transactional(readOnly = true)
  public long count() {
    return jdbc.queryForObject("SELECT count(*) FROM payments", Long.class);
  }
}
