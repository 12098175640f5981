package io.idemkey.spring.sample;

import io.idemkey.filter.Steps;
import io.idemkey.spring.JacksonStepCodec;
import java.util.concurrent.atomic.AtomicInteger;
import org.springframework.http.HttpStatus;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RestController;
import tools.jackson.databind.ObjectMapper;

/**
 * {@code POST /charges}: charges a "processor" in a step (SPEC §12) and answers 201 with the
 * charge; with {@link #failNext}, answers 500 once after the step.
 */
@RestController
public class ChargeController {

  /** What the processor answers, stored as JSON. */
  public record Charge(int number, String processorKey, long amount) {}

  /** One charge as the client asks for it. */
  public record ChargeRequest(long amount) {}

  private final Steps steps;
  private final ObjectMapper mapper;
  private final AtomicInteger processorCalls = new AtomicInteger();
  private volatile boolean failNext;

  ChargeController(Steps steps, ObjectMapper mapper) {
    this.steps = steps;
    this.mapper = mapper;
  }

  /** The calls that reached the processor. */
  public int processorCalls() {
    return processorCalls.get();
  }

  /** Makes the next request answer 500 after its step. */
  public void failNext() {
    failNext = true;
  }

  @PostMapping("/charges")
  ResponseEntity<Charge> charge(@RequestBody ChargeRequest request) {
    Charge charge = steps.run("charge", JacksonStepCodec.of(mapper, Charge.class),
        stepKey -> new Charge(processorCalls.incrementAndGet(), stepKey, request.amount()));
    if (failNext) {
      failNext = false;
      return ResponseEntity.status(HttpStatus.INTERNAL_SERVER_ERROR).body(charge);
    }
    return ResponseEntity.status(HttpStatus.CREATED).body(charge);
  }
}
