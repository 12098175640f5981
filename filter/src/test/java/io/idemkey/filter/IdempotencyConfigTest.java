package io.idemkey.filter;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.idemkey.store.Fingerprint;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.StoreBuilder;
import io.idemkey.store.TestDatabase;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

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
    assertThat(config.transactional()).isFalse();
    assertThat(config.keys()).isEqualTo(IdempotencyConfig.Keys.OPAQUE);
    assertThat(config.completionTimeout()).isEqualTo(Duration.ofSeconds(30));
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
            .set("lease", "6500ms")
            .set("wait-timeout", "2m")
            .set("purge.interval", "1d")
            .set("max-request-bytes", "512KiB")
            .set("max-response-bytes", "4MiB")
            .set("scope", "header:X-Tenant")
            .set("idempotency.methods", "post, put")
            .build();

    assertThat(config.ttl()).isEqualTo(Duration.ofHours(2));
    assertThat(config.lease()).isEqualTo(Duration.ofMillis(6500));
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

  static IdempotencyConfig loadInitParams(String... keyValues) {
    Map<String, String> initParams = new java.util.LinkedHashMap<>();
    for (int i = 0; i < keyValues.length; i += 2) {
      initParams.put(keyValues[i], keyValues[i + 1]);
    }
    return IdempotencyConfig.load(new Properties(), initParams, new Properties(), Map.of());
  }

  @Test
  void load_emptyIncludePaths_failsNamingPropertyAndSource() {
    assertThatThrownBy(() -> loadInitParams("idempotency.include-paths", ""))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessage("idempotency.include-paths from filter init-param: must name at least one path"
            + " pattern (/* for every path): with none, the filter would cover no request");
  }

  @Test
  void load_emptyMethods_failsNamingPropertyAndSource() {
    assertThatThrownBy(() -> loadInitParams("idempotency.methods", " , "))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessage("idempotency.methods from filter init-param: must name at least one method:"
            + " with none, the filter would cover no request");
  }

  @Test
  void set_leaseUnderOneSecond_failsSayingItCannotBeRenewed() {
    assertThatThrownBy(() -> IdempotencyConfig.builder().set("lease", "999ms"))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessage("idempotency.lease: must be at least 1s, so that it can be renewed (every"
            + " lease/3) before it runs out, was 999ms");
    assertThat(IdempotencyConfig.builder().store(IdempotencyConfig.StoreType.MEMORY)
            .set("lease", "1s").build().lease())
        .isEqualTo(Duration.ofSeconds(1));
  }

  @Test
  void build_leaseUnderThreeConnectTimeouts_failsNamingBoth() {
    assertThatThrownBy(() -> IdempotencyConfig.builder().set("lease", "5999ms").build())
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessage("idempotency.lease (5999ms) must be at least 3 x idempotency.jdbc.connect-timeout"
            + " (2s) = 6s: the lease is renewed every lease/3, and a renewal that waits that long for"
            + " a connection must still finish before the lease runs out");
    assertThat(IdempotencyConfig.builder().set("lease", "6s").build().lease())
        .isEqualTo(Duration.ofSeconds(6));
    assertThat(IdempotencyConfig.builder().set("lease", "2s").set("jdbc.connect-timeout", "500ms")
            .build().lease())
        .isEqualTo(Duration.ofSeconds(2));
  }

  // Regression: accepted, then every request left its key renewed for ever (409 on each retry).
  @Test
  void build_transactionalWithMemoryStore_failsNamingBoth() {
    assertThatThrownBy(() -> IdempotencyConfig.load(new Properties(),
            Map.of("idempotency.transactional", "true", "idempotency.store", "memory"),
            new Properties(), Map.of()))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessageStartingWith("idempotency.transactional (true) needs idempotency.store=postgres,"
            + " was memory");
  }

  @Test
  void build_memoryStoreShortLease_isAcceptedBecauseNoConnectionIsAwaited() {
    IdempotencyConfig config = IdempotencyConfig.builder()
        .store(IdempotencyConfig.StoreType.MEMORY).lease(Duration.ofSeconds(1)).build();

    assertThat(config.lease()).isEqualTo(Duration.ofSeconds(1));
  }

  @Test
  void load_ttlShorterThanLease_failsNamingBoth() {
    assertThatThrownBy(() -> loadInitParams("ttl", "20s", "lease", "30s"))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessage("idempotency.ttl (20s) must be at least idempotency.lease (30s): a completed"
            + " key must live at least as long as the claim that made it");
  }

  @ParameterizedTest
  @ValueSource(strings = {"2xx", "408,201", "299", "5xx, 200"})
  void set_releaseStatusesCoveringASuccess_fails(String spec) {
    assertThatThrownBy(() -> IdempotencyConfig.builder().set("release-statuses", spec))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessageStartingWith("idempotency.release-statuses: '2")
        .hasMessageEndingWith("' covers success statuses (200-299): a released success is not"
            + " stored, so every retry would run the handler again");
  }

  @Test
  void set_releaseStatusesOutsideSuccess_areAccepted() {
    IdempotencyConfig config =
        IdempotencyConfig.builder().set("release-statuses", "199,300,4xx").build();

    assertThat(config.isReleaseStatus(199)).isTrue();
    assertThat(config.isReleaseStatus(300)).isTrue();
    assertThat(config.isReleaseStatus(200)).isFalse();
  }

  @ParameterizedTest
  @ValueSource(strings = {"Content-Type", "content-length", "Content-Encoding", "Content-Language",
      "Location", "Cache-Control", "ETag", "Vary", "Transfer-Encoding", "Set-Cookie", "Date",
      "Server", "Connection", "Authorization", "Idempotency-Key", "Host"})
  void set_replayHeaderNamingARequestOrContentHeader_fails(String name) {
    assertThatThrownBy(() -> IdempotencyConfig.builder().set("replay-header", name))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessage("idempotency.replay-header: '" + name + "' is a request, content or hop-by-hop"
            + " header, not a marker of its own (as Idempotent-Replayed is)");
  }

  @ParameterizedTest
  @ValueSource(strings = {"Content-Type", "Authorization", "Host", "Cookie", "Connection"})
  void set_keyHeaderNamingAStandardHeader_failsNamingTheProperty(String name) {
    assertThatThrownBy(() -> IdempotencyConfig.builder().set("header", name))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessageStartingWith("idempotency.header: '" + name + "' is a standard request,"
            + " content or hop-by-hop header");
    assertThat(IdempotencyConfig.builder().set("header", "X-Request-Key").build().header())
        .isEqualTo("X-Request-Key");
  }

  @ParameterizedTest
  @ValueSource(strings = {"1ms", "500ms"})
  void set_purgeIntervalUnderASecond_failsNamingTheProperty(String interval) {
    assertThatThrownBy(() -> IdempotencyConfig.builder().set("purge.interval", interval))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessageStartingWith("idempotency.purge.interval: must be 0 (off) or at least 1s");
    assertThat(IdempotencyConfig.builder().set("purge.interval", "1s").build().toString())
        .contains("purge.interval=PT1S");
  }

  @Test
  void set_waitTimeoutOverAnHour_failsNamingTheProperty() {
    assertThatThrownBy(() -> IdempotencyConfig.builder().set("wait-timeout", "100d"))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessageStartingWith("idempotency.wait-timeout: must be at most 60 minutes");
    assertThat(IdempotencyConfig.builder().set("wait-timeout", "1h").build().waitTimeout())
        .isEqualTo(Duration.ofHours(1));
  }

  @Test
  void build_replayHeaderIsTheKeyHeader_failsNamingBoth() {
    assertThatThrownBy(
            () -> loadInitParams("header", "X-Request-Key", "replay-header", "x-request-key"))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessage("idempotency.replay-header (x-request-key) names a request header of"
            + " idempotency.header (X-Request-Key): the replay marker must be a header of its own");
  }

  @Test
  void build_replayHeaderIsTheScopeHeader_failsNamingBoth() {
    assertThatThrownBy(() -> loadInitParams("scope", "header:X-Tenant", "replay-header", "X-Tenant"))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessageStartingWith("idempotency.replay-header (X-Tenant) names a request header of"
            + " idempotency.scope (X-Tenant)");
  }

  @Test
  void build_replayHeaderIsAFingerprintHeader_failsNamingBoth() {
    assertThatThrownBy(() -> loadInitParams(
            "fingerprint.headers", "Content-Type,X-Account", "replay-header", "X-Account"))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessageStartingWith("idempotency.replay-header (X-Account) names a request header of"
            + " idempotency.fingerprint.headers (X-Account)");
  }

  @Test
  void set_ttlPastTenYears_failsSayingTheBound() {
    assertThatThrownBy(() -> IdempotencyConfig.builder().set("ttl", "3651d"))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessage("idempotency.ttl: must be at most 3650d (10 years), so that an expiry time stays"
            + " a valid timestamp, was 3651d");
    // So large that now + ttl overflows an Instant: still the same message, not an exception.
    assertThatThrownBy(() -> IdempotencyConfig.builder().set("ttl", "106751991167d"))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessageStartingWith("idempotency.ttl: must be at most 3650d (10 years)");
    assertThat(IdempotencyConfig.builder().set("ttl", "3650d").build().ttl())
        .isEqualTo(Duration.ofDays(3650));
  }

  @Test
  void load_newProperties_parseFromEverySource() {
    IdempotencyConfig fromFile = IdempotencyConfig.load(
        properties("idempotency.transactional", "true", "idempotency.completion-timeout", "45s"),
        Map.of(), new Properties(), Map.of());
    IdempotencyConfig fromInitParams = IdempotencyConfig.load(new Properties(),
        Map.of("transactional", "true", "completion-timeout", "PT46S"), new Properties(), Map.of());
    IdempotencyConfig fromSystem = IdempotencyConfig.load(new Properties(), Map.of(),
        properties("idempotency.transactional", "true", "idempotency.completion-timeout", "47000ms"),
        Map.of());
    IdempotencyConfig fromEnvironment = IdempotencyConfig.load(new Properties(), Map.of(),
        new Properties(),
        Map.of("IDEMPOTENCY_TRANSACTIONAL", "true", "IDEMPOTENCY_COMPLETION_TIMEOUT", "1m"));

    assertThat(List.of(fromFile, fromInitParams, fromSystem, fromEnvironment))
        .allSatisfy(config -> assertThat(config.transactional()).isTrue());
    assertThat(List.of(fromFile, fromInitParams, fromSystem, fromEnvironment))
        .extracting(IdempotencyConfig::completionTimeout)
        .containsExactly(Duration.ofSeconds(45), Duration.ofSeconds(46), Duration.ofSeconds(47),
            Duration.ofMinutes(1));
  }

  @Test
  void set_badTransactionalOrCompletionTimeout_failsNamingTheProperty() {
    assertThatThrownBy(() -> IdempotencyConfig.builder().set("transactional", "yes"))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessage("idempotency.transactional: 'yes' is not true or false");
    assertThatThrownBy(() -> IdempotencyConfig.builder().set("completion-timeout", "0s"))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessage("idempotency.completion-timeout: must be a positive duration, was PT0S");
  }

  @Test
  void build_completionTimeoutOverTtl_failsNamingBoth() {
    assertThatThrownBy(() -> loadInitParams("ttl", "1m", "completion-timeout", "61s"))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessage("idempotency.completion-timeout (61s) must be at most idempotency.ttl (1m)");
    assertThat(loadInitParams("ttl", "1m", "completion-timeout", "60s").completionTimeout())
        .isEqualTo(Duration.ofMinutes(1));
  }

  @Test
  void set_systemSchema_failsNamingTheProperty() {
    assertThatThrownBy(() -> IdempotencyConfig.builder().set("schema", "pg_catalog"))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessageStartingWith("idempotency.schema: schema name 'pg_catalog' is a PostgreSQL"
            + " system schema");
  }

  static List<String> tablesIn(String schema) throws SQLException {
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement();
        ResultSet rows = statement.executeQuery("SELECT table_name FROM information_schema.tables"
            + " WHERE table_schema = '" + schema + "' ORDER BY table_name")) {
      List<String> names = new ArrayList<>();
      while (rows.next()) {
        names.add(rows.getString(1));
      }
      return names;
    }
  }

  @Test
  void filterBuild_tableOfTheApplication_failsNamingSchemaAndTablePropertiesCreatingNothing()
      throws Exception {
    String schema = "app_" + UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement()) {
      statement.execute("CREATE SCHEMA " + schema);
      statement.execute("CREATE TABLE " + schema + ".payments (id bigint PRIMARY KEY)");
    }
    IdempotencyConfig config = IdempotencyConfig.builder()
        .set("schema", schema).set("table", "payments").set("purge.interval", "0s").build();

    assertThatThrownBy(() -> IdempotencyFilter.builder()
            .config(config).dataSource(TestDatabase.dataSource()).build())
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessageStartingWith("idempotency.schema/idempotency.table (" + schema + ".payments):"
            + " table " + schema + ".payments already exists and is not an idemkey table");

    assertThat(tablesIn(schema)).containsExactly("payments");
  }

  /**
   * Issue 23: a node of sequence keys started beside one of opaque keys on the same table, and
   * late duplicates ran again. The second refuses to start, naming idempotency.keys.
   */
  @Test
  void filterBuild_keysDifferFromTheTables_failsNamingIdempotencyKeys() {
    io.idemkey.migrations.TableName table = TestDatabase.freshTable();
    IdempotencyConfig opaque = IdempotencyConfig.builder()
        .set("table", table.table()).set("purge.interval", "0s").build();
    IdempotencyConfig sequence = IdempotencyConfig.builder()
        .set("table", table.table()).set("purge.interval", "0s").set("keys", "sequence").build();
    IdempotencyFilter first =
        IdempotencyFilter.builder().config(opaque).dataSource(TestDatabase.dataSource()).build();
    try {
      assertThatThrownBy(() -> IdempotencyFilter.builder()
              .config(sequence).dataSource(TestDatabase.dataSource()).build())
          .isInstanceOf(InvalidConfigurationException.class)
          .hasMessageStartingWith("idempotency.keys: this node's keys are sequence, but table "
              + table + " is used with opaque keys")
          .hasMessageEndingWith("Set idempotency.keys=opaque to join the table, or"
              + " idempotency.table to another table");
    } finally {
      first.destroy();
    }
  }

  /**
   * Regression: a handed-in DataSource's statements were bounded by the default 2 s whatever
   * jdbc.connect-timeout said. With 20 s, a completion that waits 3 s for a row lock succeeds.
   */
  @Test
  void applyTo_handedInDataSource_statementsBoundedByTheConfiguredConnectTimeout()
      throws Exception {
    IdempotencyConfig config = IdempotencyConfig.builder()
        .set("jdbc.connect-timeout", "20s").set("lease", "60s").set("purge.interval", "0s")
        .set("cache.max-bytes", "0")
        .build();
    io.idemkey.migrations.TableName table = TestDatabase.freshTable();
    try (io.idemkey.store.IdempotencyStore store =
        config.applyTo(io.idemkey.store.StoreBuilder.postgres(TestDatabase.dataSource()))
            .tableName(table).migrate(false).build()) {
      io.idemkey.store.IdempotencyKey key = new io.idemkey.store.IdempotencyKey("s", "k");
      long token = ((io.idemkey.store.ClaimResult.Held)
          store.claim(key, new io.idemkey.store.Fingerprint(new byte[32]))).token();
      try (Connection locker = TestDatabase.dataSource().getConnection()) {
        locker.setAutoCommit(false);
        try (Statement lock = locker.createStatement()) {
          lock.executeQuery("SELECT 1 FROM " + table.qualifiedTable() + " FOR UPDATE").close();
        }
        java.util.concurrent.CompletableFuture<Boolean> completion =
            java.util.concurrent.CompletableFuture.supplyAsync(() -> store.complete(key, token,
                new io.idemkey.store.StoredResponse(201, List.of(), new byte[0], true)));
        Thread.sleep(3_000); // past the default bound of 2 s, well inside the configured 20 s
        locker.commit();
        assertThat(completion.get(30, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
      }
    }
  }

  @Test
  void toString_showsTheNewProperties() {
    String text = IdempotencyConfig.builder()
        .transactional(true).completionTimeout(Duration.ofSeconds(12)).build().toString();

    assertThat(text).contains("transactional=true", "completion-timeout=PT12S");
  }

  @Test
  void keys_fromEveryKindOfSource_sequenceReachesTheStore() {
    IdempotencyConfig fromSystem = IdempotencyConfig.load(new Properties(), Map.of(),
        properties("idempotency.keys", "sequence"), Map.of());
    IdempotencyConfig fromEnvironment = IdempotencyConfig.load(new Properties(), Map.of(),
        new Properties(), Map.of("IDEMPOTENCY_KEYS", "SEQUENCE"));

    assertThat(List.of(fromSystem, fromEnvironment))
        .allSatisfy(config -> assertThat(config.keys())
            .isEqualTo(IdempotencyConfig.Keys.SEQUENCE));
    assertThat(fromSystem.toString()).contains("keys=sequence");
    // The store it configures takes sequence keys: anything else is refused by its claim.
    try (IdempotencyStore store = fromSystem.applyTo(StoreBuilder.memory()).build()) {
      assertThatThrownBy(() -> store.claim(new IdempotencyKey("s", "abc"),
              new Fingerprint(new byte[32])))
          .isInstanceOf(IllegalArgumentException.class);
    }
  }

  @Test
  void load_badKeys_failsNamingPropertyAndSource() {
    assertThatThrownBy(() -> IdempotencyConfig.load(new Properties(), Map.of(), new Properties(),
            Map.of("IDEMPOTENCY_KEYS", "numbers")))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessage("idempotency.keys from environment variable IDEMPOTENCY_KEYS: 'numbers' is"
            + " not one of opaque, sequence");
  }

  @Test
  void toString_masksPassword() {
    String text = IdempotencyConfig.builder().jdbcPassword("s3cret").build().toString();

    assertThat(text).contains("jdbc.password=****").doesNotContain("s3cret");
  }

  @Test
  void toString_setsSorted_unsetJdbcValuesEmpty_sameLineOnEveryRun() {
    String text = IdempotencyConfig.builder()
        .methods(List.of("PUT", "POST", "DELETE", "PATCH", "MERGE")).build().toString();

    // Issue 19: the demo printed methods in the order of an immutable set, new on every run.
    assertThat(text).contains("methods=DELETE,MERGE,PATCH,POST,PUT",
        "jdbc.url=, jdbc.username=, jdbc.password=,").doesNotContain("null");
  }

  @Test
  void storeBuilder_postgresWithoutUrl_failsNamingTheProperty() {
    assertThatThrownBy(() -> IdempotencyConfig.builder().build().storeBuilder())
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessageStartingWith("idempotency.jdbc.url is required");
  }

  @Test
  void propertyNames_eachName_isKnownToSet() {
    List<String> names = IdempotencyConfig.propertyNames();

    assertThat(names).hasSize(34).doesNotHaveDuplicates()
        .contains("idempotency.header", "idempotency.transactional", "idempotency.jdbc.url",
            "idempotency.purge.batch-size")
        .allMatch(name -> name.startsWith("idempotency."));
    for (String name : names) {
      // A value most properties refuse: a refusal must name the property, never be "unknown".
      try {
        IdempotencyConfig.builder().set(name, "\u0000 not a value");
      } catch (InvalidConfigurationException e) {
        assertThat(e).hasMessageStartingWith(name + ":");
      }
    }
    assertThatThrownBy(() -> IdempotencyConfig.builder().set("idempotency.no-such", "1"))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessageStartingWith("unknown property");
  }
}
