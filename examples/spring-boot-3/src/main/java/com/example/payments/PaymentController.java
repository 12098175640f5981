package com.example.payments;

import java.net.URI;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RestController;

/** {@code POST /payments} (behind the filter: a key is required) and {@code GET /payments/count}. */
@RestController
public class PaymentController {

  /** The request's JSON body. */
  public record NewPayment(long amount, String currency) {}

  /** The answer: what was stored. */
  public record Payment(long id, long amount, String currency) {}

  private final PaymentService payments;

  public PaymentController(PaymentService payments) {
    this.payments = payments;
  }

  @PostMapping("/payments")
  public ResponseEntity<Payment> create(@RequestBody NewPayment request) {
    long id = payments.create(request.amount(), request.currency());
    return ResponseEntity.created(URI.create("/payments/" + id))
        .body(new Payment(id, request.amount(), request.currency()));
  }

  @GetMapping("/payments/count")
  public long count() {
    return payments.count();
  }
}
