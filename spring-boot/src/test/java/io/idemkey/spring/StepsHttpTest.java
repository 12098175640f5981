package io.idemkey.spring;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.spring.sample.ChargeController;
import io.idemkey.spring.sample.SampleApplication;
import io.idemkey.store.TestDatabase;
import io.micrometer.core.instrument.MeterRegistry;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * Steps (SPEC §12) in the sample application on a real Tomcat and PostgreSQL: the request-scoped
 * {@code Steps} bean injected into a controller, results stored as JSON through the application's
 * Jackson, and the Timer idempotency.steps by outcome.
 */
@SpringBootTest(classes = SampleApplication.class,
    webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class StepsHttpTest {

  @DynamicPropertySource
  static void database(DynamicPropertyRegistry registry) {
    registry.add("spring.datasource.url", TestDatabase::jdbcUrl);
    registry.add("spring.datasource.username", TestDatabase::user);
    registry.add("spring.datasource.password", TestDatabase::password);
  }

  @LocalServerPort int port;
  @Autowired ChargeController controller;
  @Autowired MeterRegistry meters;

  long steps(String outcome) {
    return meters.get(IdempotencyMetrics.STEPS_NAME).tag("outcome", outcome).timer().count();
  }

  @Test
  void retry_after500FollowingAStep_getsTheStoredJsonResultWithoutCallingAgain() {
    Http http = new Http(port);
    String key = UUID.randomUUID().toString();
    int calls = controller.processorCalls();
    long executed = steps("step_executed");
    long replayed = steps("step_replayed");
    controller.failNext();

    HttpResponse<byte[]> failed =
        http.post("/charges", "{\"amount\":1250}", "Idempotency-Key", key);
    HttpResponse<byte[]> retried =
        http.post("/charges", "{\"amount\":1250}", "Idempotency-Key", key);

    assertThat(failed.statusCode()).isEqualTo(500);
    assertThat(retried.statusCode()).isEqualTo(201);
    assertThat(new String(retried.body(), StandardCharsets.UTF_8))
        .isEqualTo(new String(failed.body(), StandardCharsets.UTF_8))
        .contains("\"number\":" + (calls + 1)).contains("\"amount\":1250");
    assertThat(controller.processorCalls()).isEqualTo(calls + 1);
    assertThat(steps("step_executed")).isEqualTo(executed + 1);
    assertThat(steps("step_replayed")).isEqualTo(replayed + 1);
  }
}
