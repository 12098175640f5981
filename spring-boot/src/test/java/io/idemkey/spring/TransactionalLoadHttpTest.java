package io.idemkey.spring;

import static io.idemkey.spring.Http.order;
import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.spring.sample.SampleApplication;
import io.idemkey.store.TestDatabase;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * Regression (issue 22): a Boot app with the starter in transactional mode, on Boot's default
 * HikariCP pool of 10, answered a third or more of 16 concurrent clients' new keys 503 (a request
 * holding its transaction asked the same pool for a second connection). On that pool, 20 clients
 * at once, each a new key whose handler inserts through JDBC in the request's transaction: every
 * one is served (they wait their turn), and each insert is there once.
 */
@SpringBootTest(classes = SampleApplication.class,
    webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
    properties = "idempotency.transactional=true")
class TransactionalLoadHttpTest {

  static final int CLIENTS = 20;
  static final int ROUNDS = 3;

  @DynamicPropertySource
  static void database(DynamicPropertyRegistry registry) {
    registry.add("spring.datasource.url", TestDatabase::jdbcUrl);
    registry.add("spring.datasource.username", TestDatabase::user);
    registry.add("spring.datasource.password", TestDatabase::password);
  }

  @LocalServerPort int port;

  @Test
  void newKeys_moreClientsThanBootsPool_allServedEachInsertedOnce() throws Exception {
    Http http = new Http(port);
    ExecutorService clients = Executors.newFixedThreadPool(CLIENTS);
    try {
      CyclicBarrier together = new CyclicBarrier(CLIENTS);
      List<Future<List<String>>> rounds = new ArrayList<>();
      List<String> references = new ArrayList<>();
      for (int c = 0; c < CLIENTS; c++) {
        List<String> mine = new ArrayList<>();
        for (int r = 0; r < ROUNDS; r++) {
          mine.add("ref-" + UUID.randomUUID());
        }
        references.addAll(mine);
        rounds.add(clients.submit(() -> {
          together.await(30, TimeUnit.SECONDS);
          List<String> statuses = new ArrayList<>();
          for (String reference : mine) {
            HttpResponse<byte[]> response = http.post("/orders?via=jdbc", order(reference),
                "Idempotency-Key", UUID.randomUUID().toString());
            statuses.add(response.statusCode() == 201
                ? "201" : response.statusCode() + " " + Http.text(response));
          }
          return statuses;
        }));
      }
      List<String> statuses = new ArrayList<>();
      for (Future<List<String>> round : rounds) {
        statuses.addAll(round.get(120, TimeUnit.SECONDS));
      }

      assertThat(statuses).as("%d clients at once on Boot's pool of 10", CLIENTS)
          .containsOnly("201");
      for (String reference : references) {
        assertThat(Rows.orders(reference)).as(reference).isEqualTo(1);
      }
    } finally {
      clients.shutdownNow();
    }
  }
}
