package io.idemkey.spring;

import static io.idemkey.spring.Http.order;
import static org.assertj.core.api.Assertions.assertThat;

import com.zaxxer.hikari.HikariConfigMXBean;
import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.spring.sample.AsyncOrderController;
import io.idemkey.spring.sample.OrderController;
import io.idemkey.spring.sample.SampleApplication;
import io.idemkey.store.TestDatabase;
import java.net.http.HttpResponse;
import java.util.UUID;
import javax.sql.DataSource;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.jdbc.DataSourceUnwrapper;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * Transactional mode through Spring: with {@code idempotency.transactional=true} the sample's
 * {@code @Transactional} service joins the request's transaction, under JPA's transaction manager
 * ({@code via=jpa}: repository save and JdbcTemplate) and the JDBC one ({@code via=jdbc}).
 */
@SpringBootTest(classes = SampleApplication.class,
    webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
    properties = "idempotency.transactional=true")
class TransactionalModeHttpTest {

  @DynamicPropertySource
  static void database(DynamicPropertyRegistry registry) {
    registry.add("spring.datasource.url", TestDatabase::jdbcUrl);
    registry.add("spring.datasource.username", TestDatabase::user);
    registry.add("spring.datasource.password", TestDatabase::password);
  }

  @LocalServerPort int port;
  @Autowired OrderController controller;
  @Autowired AsyncOrderController async;
  @Autowired DataSource dataSource;

  Http http;
  String key;
  String reference;

  @BeforeEach
  void setUp() {
    http = new Http(port);
    key = UUID.randomUUID().toString();
    reference = "ref-" + UUID.randomUUID();
  }

  @ParameterizedTest
  @ValueSource(strings = {"jpa", "jdbc"})
  void post_success_leavesOneRowAndTheDuplicateReplaysWithoutASecond(String via) {
    int before = controller.executions();

    HttpResponse<byte[]> first =
        http.post("/orders?via=" + via, order(reference), "Idempotency-Key", key);
    HttpResponse<byte[]> duplicate =
        http.post("/orders?via=" + via, order(reference), "Idempotency-Key", key);

    assertThat(first.statusCode()).isEqualTo(201);
    assertThat(duplicate.statusCode()).isEqualTo(201);
    assertThat(duplicate.body()).isEqualTo(first.body());
    assertThat(duplicate.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(controller.executions()).isEqualTo(before + 1);
    assertThat(Rows.orders(reference)).isEqualTo(1);
    assertThat(Rows.events(reference)).isEqualTo(1);
  }

  @ParameterizedTest
  @ValueSource(strings = {"jpa", "jdbc"})
  void post_500AfterTheServiceCommitted_leavesNoRow(String via) {
    HttpResponse<byte[]> failed = http.post(
        "/orders?fail=after-write&via=" + via, order(reference), "Idempotency-Key", key);

    assertThat(failed.statusCode()).isEqualTo(500);
    // Spring's commit was harmless: the filter rolled the request's transaction back.
    assertThat(Rows.orders(reference)).isZero();
    assertThat(Rows.events(reference)).isZero();
  }

  @ParameterizedTest
  @ValueSource(strings = {"jpa", "jdbc"})
  void post_serviceThrowsAfterItsWrites_springRollsBackAndTheAnswerIsStored(String via) {
    int before = controller.executions();

    HttpResponse<byte[]> rejected = http.post(
        "/orders?fail=in-service&via=" + via, order(reference), "Idempotency-Key", key);
    HttpResponse<byte[]> replay = http.post(
        "/orders?fail=in-service&via=" + via, order(reference), "Idempotency-Key", key);

    assertThat(rejected.statusCode()).isEqualTo(400);
    assertThat(replay.statusCode()).isEqualTo(400);
    assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(controller.executions()).isEqualTo(before + 1);
    // The filter committed (the 400 is stored), yet the service's rows are gone: the rollback
    // of @Transactional rolled back for real.
    assertThat(Rows.orders(reference)).isZero();
    assertThat(Rows.events(reference)).isZero();
  }

  @ParameterizedTest
  @ValueSource(strings = {"jpa", "jdbc"})
  void post_withoutKey_springCommitsAsUsual(String via) {
    HttpResponse<byte[]> uncovered = http.post("/orders?via=" + via, order(reference));

    assertThat(uncovered.statusCode()).isEqualTo(201);
    assertThat(Rows.orders(reference)).isEqualTo(1);
    assertThat(Rows.events(reference)).isEqualTo(1);
  }

  @Test
  void post_asyncHandler_refusedWith500TheWritesRolledBackAndTheKeyReleased() {
    int before = async.executions("deferred");

    HttpResponse<byte[]> first =
        http.post("/async/deferred", order(reference), "Idempotency-Key", key);
    HttpResponse<byte[]> retry =
        http.post("/async/deferred", order(reference), "Idempotency-Key", key);

    // The handler ran and wrote its order, then Spring's startAsync() was refused (the request's
    // transaction belongs to the thread that runs the handler): the exception reaches Boot's
    // error page, the filter rolls the writes back and releases the key, so the retry runs
    // again. What is logged is Spring's IllegalStateException "Async support must be enabled on
    // a servlet and for all filters ...": the filter's request answers isAsyncSupported() false,
    // and Spring checks that before it calls startAsync(), whose message names transactional.
    assertThat(first.statusCode()).isEqualTo(500);
    assertThat(retry.statusCode()).isEqualTo(500);
    assertThat(retry.headers().firstValue("Idempotent-Replayed")).isEmpty();
    assertThat(async.executions("deferred")).isEqualTo(before + 2);
    assertThat(Rows.orders(reference)).isZero();
    assertThat(Rows.events(reference)).isZero();
  }

  @Test
  void dataSource_wrapped_stillUnwrapsToTheHikariPool() throws Exception {
    assertThat(dataSource).isNotInstanceOf(HikariDataSource.class);
    assertThat(dataSource.isWrapperFor(HikariDataSource.class)).isTrue();
    // As Boot's pool metadata and metrics find the pool behind a wrapper.
    assertThat(DataSourceUnwrapper.unwrap(
        dataSource, HikariConfigMXBean.class, HikariDataSource.class)).isNotNull();
  }
}
