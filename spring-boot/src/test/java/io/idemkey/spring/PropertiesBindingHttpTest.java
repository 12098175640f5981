package io.idemkey.spring;

import static io.idemkey.spring.Http.order;
import static io.idemkey.spring.Http.text;
import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.filter.IdempotencyConfig;
import io.idemkey.filter.IdempotencyFilter;
import io.idemkey.spring.sample.SampleApplication;
import io.idemkey.store.TestDatabase;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.UUID;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.boot.web.servlet.FilterRegistrationBean;
import org.springframework.test.context.ActiveProfiles;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/** idempotency.* from the application's YAML (application-custom.yml), on a real server. */
@SpringBootTest(classes = SampleApplication.class,
    webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@ActiveProfiles("custom")
class PropertiesBindingHttpTest {

  @DynamicPropertySource
  static void database(DynamicPropertyRegistry registry) {
    registry.add("spring.datasource.url", TestDatabase::jdbcUrl);
    registry.add("spring.datasource.username", TestDatabase::user);
    registry.add("spring.datasource.password", TestDatabase::password);
  }

  @LocalServerPort int port;
  @Autowired IdempotencyConfig config;
  @Autowired FilterRegistrationBean<IdempotencyFilter> registration;

  Http http;
  String key;
  String reference;

  @BeforeEach
  void setUp() {
    http = new Http(port);
    key = UUID.randomUUID().toString();
    reference = "ref-" + UUID.randomUUID();
  }

  @Test
  void post_customKeyHeader_replaysWithTheCustomMarker() {
    HttpResponse<byte[]> first = http.post("/orders", order(reference), "X-Request-Key", key);
    HttpResponse<byte[]> second = http.post("/orders", order(reference), "X-Request-Key", key);

    assertThat(first.statusCode()).isEqualTo(201);
    assertThat(second.body()).isEqualTo(first.body());
    assertThat(second.headers().firstValue("X-Replayed")).hasValue("true");
    assertThat(second.headers().firstValue("Idempotent-Replayed")).isEmpty();
    assertThat(Rows.orders(reference)).isEqualTo(1);
  }

  @Test
  void post_defaultHeaderOnly_is400MissingKey() {
    HttpResponse<byte[]> response =
        http.post("/orders", order(reference), "Idempotency-Key", key);

    assertThat(response.statusCode()).isEqualTo(400);
    assertThat(text(response)).contains("urn:idemkey:problem:missing-key");
    assertThat(Rows.orders(reference)).isZero();
  }

  @Test
  void post_pathOutsideIncludePaths_isNotCovered() {
    HttpResponse<byte[]> echo = http.post("/echo", "{\"a\":1}");

    assertThat(echo.statusCode()).isEqualTo(200);
    assertThat(registration.getUrlPatterns()).containsExactly("/orders");
  }

  @Test
  void config_yamlValues_boundThroughTheBuilder() {
    assertThat(config.header()).isEqualTo("X-Request-Key");
    assertThat(config.methods()).containsExactlyInAnyOrder("POST", "PUT");
    assertThat(config.required()).isTrue();
    assertThat(config.ttl()).isEqualTo(Duration.ofHours(2));
  }
}
