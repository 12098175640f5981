package io.idemkey.demo;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.filter.StepCall;
import io.idemkey.filter.StepCodec;
import io.idemkey.filter.Steps;
import io.idemkey.store.StoreUnavailableException;
import jakarta.servlet.DispatcherType;
import jakarta.servlet.Filter;
import java.lang.reflect.Proxy;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.sql.SQLException;
import java.time.Duration;
import java.util.EnumSet;
import java.util.concurrent.atomic.AtomicLong;
import javax.sql.DataSource;
import org.eclipse.jetty.ee10.servlet.FilterHolder;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Issue 23: the 503 of a payment whose charge failed tells the truth: not charged, charged but
 * not recorded, or unknown. The handler alone on Jetty, with a {@link FakeProcessor} and steps
 * that stand for the filter's, and no database (or one that cannot be reached).
 */
class PaymentsServletTest {

  static final String PAYMENT = "{\"amount\": 1250, \"currency\": \"EUR\"}";
  static final Duration PROCESSOR_TIMEOUT = Duration.ofMillis(500);

  final HttpClient client = HttpClient.newHttpClient();
  FakeProcessor processor;
  Server server;

  @AfterEach
  void stop() throws Exception {
    if (server != null) {
      server.stop();
    }
    if (processor != null) {
      processor.close();
    }
  }

  /** Where the store is away, for steps that stand for the filter's. */
  enum StoreAway { NEVER, BEFORE_THE_CALL, AFTER_THE_CALL }

  /**
   * Steps of a request that holds a key, as the filter's: the call is made and its result
   * returned, unless the store is away before or after it.
   */
  static Steps steps(StoreAway away) {
    return new Steps() {
      @Override
      public <T, E extends Exception> T run(String name, StepCodec<T> codec, StepCall<T, E> call)
          throws E {
        if (away == StoreAway.BEFORE_THE_CALL) {
          throw new StoreUnavailableException("test: the store is away", null);
        }
        T result = call.call(derivedKey(name));
        if (away == StoreAway.AFTER_THE_CALL) {
          throw new StoreUnavailableException("test: the store went away", null);
        }
        return result;
      }

      @Override
      public String derivedKey(String name) {
        return "derived-" + name;
      }
    };
  }

  /**
   * POSTs a payment to the handler charging at {@code processor}, with {@code steps} (null: a
   * request that holds no key, as on /bare/payments), and no database; returns the answer.
   */
  HttpResponse<String> pay(Steps steps) throws Exception {
    return pay(steps, null);
  }

  /** As {@link #pay(Steps)}, inserting the payment with {@code database}. */
  HttpResponse<String> pay(Steps steps, DatabaseCalls database) throws Exception {
    ServletContextHandler context = new ServletContextHandler();
    context.setContextPath("/");
    if (steps != null) {
      Filter attribute = (request, response, chain) -> {
        request.setAttribute(Steps.ATTRIBUTE, steps);
        chain.doFilter(request, response);
      };
      context.addFilter(new FilterHolder(attribute), "/*", EnumSet.of(DispatcherType.REQUEST));
    }
    context.addServlet(new ServletHolder(new PaymentsServlet(database, new AtomicLong(),
        new ProcessorClient(processor.url(), PROCESSOR_TIMEOUT), false)), "/payments/*");
    server = new Server();
    ServerConnector connector = new ServerConnector(server);
    connector.setHost("127.0.0.1");
    server.addConnector(connector);
    server.setHandler(context);
    server.start();
    return client.send(
        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + connector.getLocalPort()
                + "/payments"))
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(PAYMENT))
            .build(),
        HttpResponse.BodyHandlers.ofString());
  }

  static void assert503Saying(HttpResponse<String> answer, String detail) {
    assertThat(answer.statusCode()).isEqualTo(503);
    assertThat(answer.headers().firstValue("Content-Type")).hasValue(ProblemJson.CONTENT_TYPE);
    assertThat(answer.body()).contains("\"detail\":\"" + detail + "\"");
  }

  /** Regression: "the payment could not be charged now" after a call that timed out. */
  @Test
  void post_processorCallTimedOut_is503OutcomeUnknownRetryWithTheSameKey() throws Exception {
    processor = FakeProcessor.answering(PROCESSOR_TIMEOUT.multipliedBy(4), call -> 201);

    assert503Saying(pay(steps(StoreAway.NEVER)), PaymentsServlet.OUTCOME_UNKNOWN);
    assertThat(PaymentsServlet.OUTCOME_UNKNOWN)
        .contains("unknown", "retry with the same Idempotency-Key");
  }

  @Test
  void post_processorCallTimedOutWithoutAKey_is503OutcomeUnknownARetryMayChargeAgain()
      throws Exception {
    processor = FakeProcessor.answering(PROCESSOR_TIMEOUT.multipliedBy(4), call -> 201);

    assert503Saying(pay(null), PaymentsServlet.OUTCOME_UNKNOWN_WITHOUT_KEY);
  }

  @Test
  void post_processorUnavailable_is503NotCharged() throws Exception {
    processor = FakeProcessor.answering(Duration.ZERO, call -> 503);

    assert503Saying(pay(steps(StoreAway.NEVER)), PaymentsServlet.NOT_CHARGED);
    assertThat(PaymentsServlet.NOT_CHARGED).contains("did not charge the card");
  }

  @Test
  void post_storeAwayBeforeTheCharge_is503NotCharged_processorNotCalled() throws Exception {
    processor = FakeProcessor.answering(Duration.ZERO, call -> 201);

    assert503Saying(pay(steps(StoreAway.BEFORE_THE_CALL)), PaymentsServlet.NOT_CHARGED);
    assertThat(processor.calls()).isZero();
  }

  /** Regression: "could not be charged" when the card was charged and its result not stored. */
  @Test
  void post_storeAwayAfterTheCharge_is503ChargedNotRecorded() throws Exception {
    processor = FakeProcessor.answering(Duration.ZERO, call -> 201);

    assert503Saying(pay(steps(StoreAway.AFTER_THE_CALL)), PaymentsServlet.CHARGED_NOT_RECORDED);
    assertThat(processor.calls()).isEqualTo(1);
  }

  /** A database that cannot be reached: every connection fails. */
  static DatabaseCalls unreachableDatabase() {
    DataSource unreachable = (DataSource) Proxy.newProxyInstance(
        DataSource.class.getClassLoader(), new Class<?>[] {DataSource.class},
        (proxy, method, arguments) -> {
          if (method.getName().equals("getConnection")) {
            throw new SQLException("test: the database cannot be reached", "08001");
          }
          throw new UnsupportedOperationException(method.getName());
        });
    return new DatabaseCalls(unreachable, Duration.ofSeconds(1));
  }

  /** Regression: "the payments database is unavailable" said nothing of the charge, made. */
  @Test
  void post_insertFailsAfterTheCharge_is503ChargedNotRecorded() throws Exception {
    processor = FakeProcessor.answering(Duration.ZERO, call -> 201);

    assert503Saying(pay(steps(StoreAway.NEVER), unreachableDatabase()),
        PaymentsServlet.CHARGED_NOT_RECORDED);
    assertThat(processor.calls()).isEqualTo(1);
  }

  @Test
  void post_insertFailsAfterTheChargeWithoutAKey_is503ChargedARetryChargesAgain()
      throws Exception {
    processor = FakeProcessor.answering(Duration.ZERO, call -> 201);

    assert503Saying(pay(null, unreachableDatabase()),
        PaymentsServlet.CHARGED_NOT_RECORDED_WITHOUT_KEY);
  }
}
