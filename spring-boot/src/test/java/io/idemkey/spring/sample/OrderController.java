package io.idemkey.spring.sample;

import java.net.URI;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.springframework.http.HttpStatus;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestParam;
import org.springframework.web.bind.annotation.RestController;

/**
 * {@code POST /orders} with JSON {@code {"reference", "item", "quantity"}}: 201 with the order and
 * a Location. For tests: {@code via=jdbc} uses the JDBC transaction manager instead of JPA's;
 * {@code fail=after-write} answers 500 after the service returned (its transaction committed, as
 * far as Spring knows); {@code fail=in-service} makes the service throw after its writes (Spring
 * rolls back) and answers 400; {@code fail=throw} throws from the handler after the service
 * returned (no handler of the application's answers it: Spring Boot's error page does, a 500);
 * {@code delayMs} sleeps before answering. {@code POST /echo}
 * answers its body.
 */
@RestController
public class OrderController {

  /** One order as the client sends it. */
  public record OrderRequest(String reference, String item, int quantity) {}

  private final OrderService service;
  private final AtomicInteger executions = new AtomicInteger();

  OrderController(OrderService service) {
    this.service = service;
  }

  /** How many times the handler ran. */
  public int executions() {
    return executions.get();
  }

  @PostMapping("/orders")
  ResponseEntity<Map<String, Object>> place(
      @RequestBody OrderRequest order,
      @RequestParam(name = "via", defaultValue = "jpa") String via,
      @RequestParam(name = "fail", defaultValue = "none") String fail,
      @RequestParam(name = "delayMs", defaultValue = "0") long delayMs) throws InterruptedException {
    executions.incrementAndGet();
    boolean reject = fail.equals("in-service");
    long id = via.equals("jdbc")
        ? service.placeWithJdbc(order.reference(), order.item(), order.quantity(), reject)
        : service.placeWithJpa(order.reference(), order.item(), order.quantity(), reject);
    Thread.sleep(delayMs);
    Map<String, Object> body = new LinkedHashMap<>();
    body.put("id", id);
    body.put("reference", order.reference());
    body.put("item", order.item());
    body.put("quantity", order.quantity());
    if (fail.equals("throw")) {
      throw new IllegalStateException("the handler failed");
    }
    if (fail.equals("after-write")) {
      return ResponseEntity.status(HttpStatus.INTERNAL_SERVER_ERROR).body(body);
    }
    return ResponseEntity.created(URI.create("/orders/" + id)).body(body);
  }

  @ExceptionHandler(OrderService.Rejected.class)
  ResponseEntity<Map<String, Object>> rejected(OrderService.Rejected e) {
    return ResponseEntity.badRequest().body(Map.of("error", "rejected"));
  }

  @PostMapping("/echo")
  String echo(@RequestBody String body) {
    return body;
  }
}
