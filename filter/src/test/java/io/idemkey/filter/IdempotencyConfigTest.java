package io.idemkey.filter;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.Map;
import java.util.Properties;
import org.junit.jupiter.api.Test;

class IdempotencyConfigTest {

  static Properties properties(String... keyValues) {
    Properties properties = new Properties();
    for (int i = 0; i < keyValues.length; i += 2) {
      properties.setProperty(keyValues[i], keyValues[i + 1]);
    }
    return properties;
  }

  @Test
  void builder_defaults_areThoseOfTheSpec() {
    IdempotencyConfig config = IdempotencyConfig.builder().build();

    assertThat(config.header()).isEqualTo("Idempotency-Key");
    assertThat(config.methods()).containsExactlyInAnyOrder("POST", "PATCH");
    assertThat(config.required()).isFalse();
    assertThat(config.scope()).isEqualTo(IdempotencyConfig.Scope.principal());
    assertThat(config.fingerprintHeaders()).containsExactly("Content-Type");
    assertThat(config.ttl()).isEqualTo(Duration.ofHours(24));
    assertThat(config.lease()).isEqualTo(Duration.ofSeconds(30));
    assertThat(config.onInFlight()).isEqualTo(IdempotencyConfig.InFlight.REJECT);
    assertThat(config.waitTimeout()).isEqualTo(Duration.ofSeconds(10));
    assertThat(config.replayHeader()).isEqualTo("Idempotent-Replayed");
    assertThat(config.excludeResponseHeaders()).containsExactly("set-cookie");
    assertThat(config.maxRequestBytes()).isEqualTo(1 << 20);
    assertThat(config.maxResponseBytes()).isEqualTo(4 << 20);
    assertThat(config.onStoreFailure()).isEqualTo(IdempotencyConfig.OnStoreFailure.FAIL_CLOSED);
    assertThat(config.store()).isEqualTo(IdempotencyConfig.StoreType.POSTGRES);
    assertThat(config.jdbcConnectTimeout()).isEqualTo(Duration.ofSeconds(2));
    assertThat(config.tableName().toString()).isEqualTo("public.idempotency_keys");
    assertThat(config.isReleaseStatus(408)).isTrue();
    assertThat(config.isReleaseStatus(429)).isTrue();
    assertThat(config.isReleaseStatus(503)).isTrue();
    assertThat(config.isReleaseStatus(409)).isFalse();
    assertThat(config.isReleaseStatus(201)).isFalse();
  }

  @Test
  void load_laterSourcesOverrideEarlier() {
    Properties file = properties("idempotency.lease", "10s", "idempotency.ttl", "1h",
        "idempotency.header", "X-File", "idempotency.wait-timeout", "1s");
    Map<String, String> initParams = Map.of("lease", "20s", "ttl", "2h", "header", "X-Init");
    Properties system = properties("idempotency.lease", "30s", "idempotency.ttl", "3h",
        "unrelated.property", "ignored");
    Map<String, String> env = Map.of("IDEMPOTENCY_LEASE", "40s", "IDEMPOTENCY_TEST_JDBC_URL", "x");

    IdempotencyConfig config = IdempotencyConfig.load(file, initParams, system, env);

    assertThat(config.lease()).isEqualTo(Duration.ofSeconds(40));
    assertThat(config.ttl()).isEqualTo(Duration.ofHours(3));
    assertThat(config.header()).isEqualTo("X-Init");
    assertThat(config.waitTimeout()).isEqualTo(Duration.ofSeconds(1));
  }

  @Test
  void load_environmentVariableNames_mapDotsAndDashes() {
    IdempotencyConfig config =
        IdempotencyConfig.load(
            new Properties(),
            Map.of(),
            new Properties(),
            Map.of("IDEMPOTENCY_JDBC_URL", "jdbc:postgresql://db/app",
                "IDEMPOTENCY_ON_IN_FLIGHT", "wait",
                "IDEMPOTENCY_FINGERPRINT_HEADERS", "Content-Type, X-Tenant",
                "IDEMPOTENCY_CACHE_MAX_BYTES", "512KiB"));

    assertThat(config.jdbcUrl()).isEqualTo("jdbc:postgresql://db/app");
    assertThat(config.onInFlight()).isEqualTo(IdempotencyConfig.InFlight.WAIT);
    assertThat(config.fingerprintHeaders()).containsExactly("Content-Type", "X-Tenant");
  }

  @Test
  void load_badValue_namesPropertyAndSource() {
    assertThatThrownBy(
            () ->
                IdempotencyConfig.load(
                    new Properties(), Map.of(), properties("idempotency.lease", "soon"), Map.of()))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessageStartingWith("idempotency.lease from system property: 'soon' is not a duration");
    assertThatThrownBy(
            () ->
                IdempotencyConfig.load(
                    new Properties(), Map.of(), new Properties(),
                    Map.of("IDEMPOTENCY_MAX_REQUEST_BYTES", "1TB")))
        .hasMessageStartingWith(
            "idempotency.max-request-bytes from environment variable IDEMPOTENCY_MAX_REQUEST_BYTES");
  }

  @Test
  void load_unknownProperty_failsNamingIt() {
    assertThatThrownBy(
            () -> IdempotencyConfig.load(
                properties("idempotency.leese", "1s"), Map.of(), new Properties(), Map.of()))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessage("unknown property idempotency.leese in idempotency.properties");
  }

  @Test
  void set_everyKindOfBadValue_namesTheProperty() {
    String[][] bad = {
      {"required", "yes"}, {"scope", "tenant"}, {"scope", "header:"}, {"on-in-flight", "queue"},
      {"release-statuses", "6xx"}, {"release-statuses", "99"}, {"max-response-bytes", "0"},
      {"jdbc.pool-size", "0"}, {"jdbc.connect-timeout", "100ms"}, {"schema", "Bad Schema"},
      {"table", "x;drop"}, {"include-paths", "/a*b"}, {"methods", "PO ST"}, {"ttl", "-1s"},
      {"jdbc.url", "jdbc:mysql://x"}, {"store", "redis"}, {"purge.batch-size", "zero"},
    };
    for (String[] pair : bad) {
      assertThatThrownBy(() -> IdempotencyConfig.builder().set(pair[0], pair[1]))
          .as(pair[0] + "=" + pair[1])
          .isInstanceOf(InvalidConfigurationException.class)
          .hasMessageStartingWith("idempotency." + pair[0] + ": ");
    }
  }

  @Test
  void set_valueFormats_parse() {
    IdempotencyConfig config =
        IdempotencyConfig.builder()
            .set("ttl", "PT2H")
            .set("lease", "500ms")
            .set("wait-timeout", "2m")
            .set("purge.interval", "1d")
            .set("max-request-bytes", "512KiB")
            .set("max-response-bytes", "4MiB")
            .set("scope", "header:X-Tenant")
            .set("idempotency.methods", "post, put")
            .build();

    assertThat(config.ttl()).isEqualTo(Duration.ofHours(2));
    assertThat(config.lease()).isEqualTo(Duration.ofMillis(500));
    assertThat(config.waitTimeout()).isEqualTo(Duration.ofMinutes(2));
    assertThat(config.maxRequestBytes()).isEqualTo(512 * 1024);
    assertThat(config.maxResponseBytes()).isEqualTo(4 * 1024 * 1024);
    assertThat(config.scope()).isEqualTo(IdempotencyConfig.Scope.header("X-Tenant"));
    assertThat(config.methods()).containsExactlyInAnyOrder("POST", "PUT");
  }

  @Test
  void covers_methodsAndPathPatterns() {
    IdempotencyConfig config =
        IdempotencyConfig.builder()
            .includePaths(java.util.List.of("/api/*", "*.do", "/exact"))
            .excludePaths(java.util.List.of("/api/health"))
            .build();

    assertThat(config.covers("POST", "/api/payments")).isTrue();
    assertThat(config.covers("POST", "/api")).isTrue();
    assertThat(config.covers("POST", "/apix")).isFalse();
    assertThat(config.covers("POST", "/form.do")).isTrue();
    assertThat(config.covers("PATCH", "/exact")).isTrue();
    assertThat(config.covers("POST", "/exact/more")).isFalse();
    assertThat(config.covers("POST", "/api/health")).isFalse();
    assertThat(config.covers("GET", "/api/payments")).isFalse();
  }

  @Test
  void toString_masksPassword() {
    String text = IdempotencyConfig.builder().jdbcPassword("s3cret").build().toString();

    assertThat(text).contains("jdbc.password=****").doesNotContain("s3cret");
  }

  @Test
  void storeBuilder_postgresWithoutUrl_failsNamingTheProperty() {
    assertThatThrownBy(() -> IdempotencyConfig.builder().build().storeBuilder())
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessageStartingWith("idempotency.jdbc.url is required");
  }
}
