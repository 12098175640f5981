package io.idemkey.frameworks;

import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;
import org.springframework.core.task.SimpleAsyncTaskExecutor;
import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.http.ProblemDetail;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestMapping;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.context.request.async.DeferredResult;
import org.springframework.web.servlet.config.annotation.AsyncSupportConfigurer;
import org.springframework.web.servlet.config.annotation.EnableWebMvc;
import org.springframework.web.servlet.config.annotation.WebMvcConfigurer;
import org.springframework.web.servlet.mvc.method.annotation.StreamingResponseBody;

/**
 * A plain Spring MVC application (no Spring Boot): annotation configuration for a
 * DispatcherServlet, one controller per way of answering that Spring MVC offers. Every handler
 * counts its runs in the {@link Executions} singleton that the test registers, and names its run
 * in the response.
 */
@Configuration
@EnableWebMvc
@Import({SpringMvcApp.Orders.class, SpringMvcApp.Failures.class})
class SpringMvcApp implements WebMvcConfigurer {

  /** The JSON request body. */
  record OrderRequest(long amount, String currency) {}

  /** The JSON response body. */
  record Order(String id, long amount, String currency, int run) {}

  @Override
  public void configureAsyncSupport(AsyncSupportConfigurer configurer) {
    configurer.setTaskExecutor(new SimpleAsyncTaskExecutor("mvc-async-"));
    configurer.setDefaultTimeout(10_000);
  }

  /** Handlers that answer 2xx, synchronously and asynchronously. */
  @RestController
  @RequestMapping("/spring")
  static class Orders {

    private final Executions executions;
    /** Finishes a DeferredResult on another thread, after the handler has returned. */
    private final Executor later = CompletableFuture.delayedExecutor(50, TimeUnit.MILLISECONDS);

    Orders(Executions executions) {
      this.executions = executions;
    }

    @PostMapping("/json")
    Order json(@RequestBody OrderRequest request) {
      int run = executions.run("json");
      return new Order("ord-" + run, request.amount(), request.currency(), run);
    }

    @PostMapping(value = "/text", produces = "text/plain;charset=ISO-8859-1")
    String text(@RequestBody String body) {
      return "caf\u00e9 run " + executions.run("text");
    }

    @PostMapping("/created")
    ResponseEntity<Order> created(@RequestBody OrderRequest request) {
      int run = executions.run("created");
      Order order = new Order("ord-" + run, request.amount(), request.currency(), run);
      return ResponseEntity.created(URI.create("/spring/orders/" + order.id()))
          .header("X-Run", String.valueOf(run))
          .header("Cache-Control", "no-store")
          .body(order);
    }

    @PostMapping("/deferred")
    DeferredResult<ResponseEntity<Order>> deferred(@RequestBody OrderRequest request) {
      int run = executions.run("deferred");
      DeferredResult<ResponseEntity<Order>> result = new DeferredResult<>();
      later.execute(() -> result.setResult(
          ResponseEntity.status(HttpStatus.ACCEPTED)
              .header("X-Run", String.valueOf(run))
              .body(new Order("ord-" + run, request.amount(), request.currency(), run))));
      return result;
    }

    @PostMapping("/deferred-unavailable")
    DeferredResult<ResponseEntity<String>> deferredUnavailable(@RequestBody OrderRequest request) {
      int run = executions.run("deferred-unavailable");
      DeferredResult<ResponseEntity<String>> result = new DeferredResult<>();
      later.execute(() -> result.setResult(
          ResponseEntity.status(HttpStatus.SERVICE_UNAVAILABLE)
              .header("Retry-After", "1")
              .contentType(MediaType.TEXT_PLAIN)
              .body("try again (run " + run + ")")));
      return result;
    }

    @PostMapping("/callable")
    Callable<ResponseEntity<String>> callable(@RequestBody String body) {
      int run = executions.run("callable");
      return () -> ResponseEntity.status(HttpStatus.CREATED)
          .header("X-Run", String.valueOf(run))
          .contentType(new MediaType("text", "plain", StandardCharsets.UTF_8))
          .body("called \u20ac run " + run);
    }

    @PostMapping("/streaming")
    ResponseEntity<StreamingResponseBody> streaming(@RequestBody String body) {
      int run = executions.run("streaming");
      StreamingResponseBody stream = out -> {
        for (int chunk = 1; chunk <= 3; chunk++) {
          out.write(("chunk " + chunk + " of run " + run + " \u20ac\n")
              .getBytes(StandardCharsets.UTF_8));
          out.flush();
        }
      };
      return ResponseEntity.ok()
          .header("X-Run", String.valueOf(run))
          .contentType(new MediaType("text", "plain", StandardCharsets.UTF_8))
          .body(stream);
    }
  }

  /** An invalid order: the controller's exception handler answers 400 (stored). */
  static final class InvalidOrderException extends RuntimeException {
    InvalidOrderException(String message) {
      super(message);
    }
  }

  /** A broken downstream: the controller's exception handler answers 500 (released). */
  static final class DownstreamBrokenException extends RuntimeException {
    DownstreamBrokenException(String message) {
      super(message);
    }
  }

  /** Handlers that throw, answered by exception handlers. */
  @RestController
  @RequestMapping("/spring")
  static class Failures {

    private final Executions executions;

    Failures(Executions executions) {
      this.executions = executions;
    }

    @PostMapping("/invalid")
    Order invalid(@RequestBody OrderRequest request) {
      int run = executions.run("invalid");
      throw new InvalidOrderException("amount must be positive (run " + run + ")");
    }

    @PostMapping("/broken")
    Order broken(@RequestBody OrderRequest request) {
      int run = executions.run("broken");
      throw new DownstreamBrokenException("the ledger did not answer (run " + run + ")");
    }

    @ExceptionHandler
    ResponseEntity<ProblemDetail> onInvalid(InvalidOrderException e) {
      ProblemDetail problem = ProblemDetail.forStatusAndDetail(HttpStatus.BAD_REQUEST, e.getMessage());
      problem.setTitle("Invalid order");
      return ResponseEntity.badRequest().header("X-Error", "invalid").body(problem);
    }

    @ExceptionHandler
    ResponseEntity<String> onBroken(DownstreamBrokenException e) {
      return ResponseEntity.internalServerError()
          .contentType(MediaType.TEXT_PLAIN)
          .body(e.getMessage());
    }
  }
}
