package io.idemkey.spring.sample;

import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestMapping;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.context.request.async.DeferredResult;
import org.springframework.web.context.request.async.WebAsyncTask;
import org.springframework.web.servlet.mvc.method.annotation.StreamingResponseBody;

/**
 * Orders answered asynchronously, each way Spring MVC offers: {@code POST /async/deferred} (a
 * {@code DeferredResult} completed from another thread after the handler returned, 201 with a
 * Location), {@code POST /async/callable} (a {@code Callable} run on Spring's task executor,
 * 201), {@code POST /async/task} (the same as a {@code WebAsyncTask} with its own timeout, 201)
 * and {@code POST /async/streaming} (a {@code StreamingResponseBody} written in chunks,
 * 200). Each places the order through {@link OrderService} and counts its runs by endpoint.
 *
 * <p>Thread-safe: the counts are concurrent.
 */
@RestController
@RequestMapping("/async")
public class AsyncOrderController {

  private final OrderService service;
  private final ConcurrentMap<String, AtomicInteger> executions = new ConcurrentHashMap<>();
  /** Finishes a DeferredResult on another thread, after the handler has returned. */
  private final Executor later = CompletableFuture.delayedExecutor(50, TimeUnit.MILLISECONDS);

  AsyncOrderController(OrderService service) {
    this.service = service;
  }

  /** How many times the handler of {@code endpoint} ran. */
  public int executions(String endpoint) {
    AtomicInteger count = executions.get(endpoint);
    return count == null ? 0 : count.get();
  }

  @PostMapping("/deferred")
  DeferredResult<ResponseEntity<Map<String, Object>>> deferred(
      @RequestBody OrderController.OrderRequest order) {
    int run = run("deferred");
    long id = service.placeWithJpa(order.reference(), order.item(), order.quantity(), false);
    DeferredResult<ResponseEntity<Map<String, Object>>> result = new DeferredResult<>();
    later.execute(() -> result.setResult(
        ResponseEntity.created(URI.create("/orders/" + id))
            .header("X-Run", String.valueOf(run))
            .body(body(id, order, run))));
    return result;
  }

  @PostMapping("/callable")
  Callable<ResponseEntity<String>> callable(@RequestBody OrderController.OrderRequest order) {
    int run = run("callable");
    return () -> {
      long id = service.placeWithJdbc(order.reference(), order.item(), order.quantity(), false);
      return ResponseEntity.status(HttpStatus.CREATED)
          .header("X-Run", String.valueOf(run))
          .contentType(new MediaType("text", "plain", StandardCharsets.UTF_8))
          .body("order " + id + " placed \u20ac run " + run);
    };
  }

  @PostMapping("/task")
  WebAsyncTask<ResponseEntity<String>> task(@RequestBody OrderController.OrderRequest order) {
    int run = run("task");
    return new WebAsyncTask<>(10_000, () -> {
      long id = service.placeWithJdbc(order.reference(), order.item(), order.quantity(), false);
      return ResponseEntity.status(HttpStatus.CREATED)
          .header("X-Run", String.valueOf(run))
          .contentType(new MediaType("text", "plain", StandardCharsets.UTF_8))
          .body("order " + id + " placed by a task, run " + run);
    });
  }

  @PostMapping("/streaming")
  ResponseEntity<StreamingResponseBody> streaming(
      @RequestBody OrderController.OrderRequest order) {
    int run = run("streaming");
    long id = service.placeWithJpa(order.reference(), order.item(), order.quantity(), false);
    StreamingResponseBody stream = out -> {
      for (int chunk = 1; chunk <= 3; chunk++) {
        out.write(("chunk " + chunk + " of order " + id + " run " + run + " \u20ac\n")
            .getBytes(StandardCharsets.UTF_8));
        out.flush();
      }
    };
    return ResponseEntity.ok()
        .header("X-Run", String.valueOf(run))
        .contentType(new MediaType("text", "plain", StandardCharsets.UTF_8))
        .body(stream);
  }

  private int run(String endpoint) {
    return executions.computeIfAbsent(endpoint, e -> new AtomicInteger()).incrementAndGet();
  }

  private static Map<String, Object> body(
      long id, OrderController.OrderRequest order, int run) {
    Map<String, Object> body = new LinkedHashMap<>();
    body.put("id", id);
    body.put("reference", order.reference());
    body.put("item", order.item());
    body.put("quantity", order.quantity());
    body.put("run", run);
    return body;
  }
}
