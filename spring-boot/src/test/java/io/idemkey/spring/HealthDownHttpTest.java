package io.idemkey.spring;

import static io.idemkey.spring.Http.text;
import static org.assertj.core.api.Assertions.assertThat;

import com.jayway.jsonpath.JsonPath;
import io.idemkey.spring.sample.SampleApplication;
import io.idemkey.store.TestDatabase;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.io.IOException;
import java.time.Duration;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/** The health indicator on a PostgreSQL of this test's own, which it stops. */
@SpringBootTest(classes = SampleApplication.class,
    webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
    properties = "spring.datasource.hikari.connection-timeout=1000")
@DirtiesContext
class HealthDownHttpTest {

  static EmbeddedPostgres postgres;

  @DynamicPropertySource
  static void database(DynamicPropertyRegistry registry) {
    postgres = TestDatabase.startEmbedded();
    registry.add("spring.datasource.url", () -> postgres.getJdbcUrl("postgres", "postgres"));
    registry.add("spring.datasource.username", () -> "postgres");
    registry.add("spring.datasource.password", () -> "postgres");
  }

  @AfterAll
  static void stop() throws IOException {
    if (postgres != null) {
      postgres.close();
    }
  }

  @LocalServerPort int port;

  @Test
  void health_databaseStops_goesFromUpToDown() throws IOException {
    Http http = new Http(port);
    assertThat(status(http)).isEqualTo("UP");

    postgres.close();

    // The result is cached for a few seconds; then a check fails within the connect timeout.
    Awaitility.await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(500))
        .until(() -> status(http).equals("DOWN"));
    assertThat(JsonPath.<String>read(text(http.get("/actuator/health")),
        "$.components.idempotency.details.error")).isNotBlank();
  }

  private static String status(Http http) {
    return JsonPath.read(text(http.get("/actuator/health")), "$.components.idempotency.status");
  }
}
