package io.idemkey.filter;

import static io.idemkey.filter.FilterHttpContract.assertProblem;
import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.migrations.Migrations;
import io.idemkey.migrations.TableName;
import io.idemkey.store.PrimaryAndStandby;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.postgresql.ds.PGSimpleDataSource;

/** SPEC §14 over HTTP: the filter, with its own pool, on a standby that is promoted. */
class FailoverFilterTest {

  final HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
  final TestHandler handler = new TestHandler();

  @TempDir Path dir;

  // The database a URL without targetServerType=primary reaches when the primary is gone, or a
  // name that now points at a standby: it refuses writes ("cannot execute ... in a read-only
  // transaction", SQLSTATE 25006). Covered requests get 503 store-unavailable, not a 500; once
  // that server is promoted, the same filter serves them, with no restart.
  @Test
  void post_onlyAReadOnlyStandbyReachable_is503StoreUnavailableUntilItIsPromoted()
      throws Exception {
    try (PrimaryAndStandby pair = PrimaryAndStandby.start(dir, true);
        ServletContainer container = new JettyContainer()) {
      PGSimpleDataSource primary = new PGSimpleDataSource();
      primary.setURL(pair.url());
      primary.setUser("postgres");
      Migrations.migrate(primary, TableName.DEFAULT);
      pair.awaitStandbyCaughtUp();
      IdempotencyConfig config = IdempotencyConfig.builder()
          .jdbcUrl(pair.standbyUrl())
          .jdbcUsername("postgres").jdbcPassword("postgres")
          .jdbcConnectTimeout(Duration.ofMillis(500))
          .migrate(false)
          .cacheMaxBytes(0)
          .build();
      container.start(IdempotencyFilter.builder().config(config).build(), handler);
      String key = UUID.randomUUID().toString();

      for (int i = 0; i < 3; i++) {
        assertProblem(post(container, key), 503, "store-unavailable");
      }
      // (The claim is a SELECT with an INSERT in it: "cannot execute SELECT in ...".)
      assertThat(pair.standbyLog()).contains("in a read-only transaction");
      pair.killPrimary();
      pair.promoteStandby();
      HttpResponse<byte[]> paid = post(container, key);
      for (int i = 0; i < 100 && paid.statusCode() == 503; i++) {
        Thread.sleep(100);
        paid = post(container, key);
      }
      HttpResponse<byte[]> replay = post(container, key);

      assertThat(paid.statusCode()).isEqualTo(201);
      assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
      assertThat(replay.body()).isEqualTo(paid.body());
      assertThat(handler.executions).hasValue(1);
    }
  }

  private HttpResponse<byte[]> post(ServletContainer container, String key) throws Exception {
    return client.send(
        HttpRequest.newBuilder(URI.create(container.uri() + "/payments"))
            .timeout(Duration.ofSeconds(30))
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", key)
            .POST(HttpRequest.BodyPublishers.ofString("{\"amount\": 1250}"))
            .build(),
        HttpResponse.BodyHandlers.ofByteArray());
  }
}
