package io.idemkey.demo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntUnaryOperator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Issue 23: a failed charge says whether the card was certainly not charged or whether that is
 * unknown. Against a processor on this machine ({@link FakeProcessor}, or a socket that breaks
 * the connection once the request is in), with a short answer timeout.
 */
class ProcessorClientTest {

  static final PaymentRequest PAYMENT = new PaymentRequest(1250, "EUR");
  static final Duration TIMEOUT = Duration.ofMillis(500);

  FakeProcessor processor;
  ServerSocket breaking;

  @AfterEach
  void stop() throws IOException {
    if (processor != null) {
      processor.close();
    }
    if (breaking != null) {
      breaking.close();
    }
  }

  String processor(Duration delay, IntUnaryOperator statusOfCall) throws IOException {
    processor = FakeProcessor.answering(delay, statusOfCall);
    return processor.url();
  }

  static String charge(String url) throws ProcessorClient.ChargeFailed {
    return new ProcessorClient(url, TIMEOUT).charge(null, PAYMENT, "step-key", 0);
  }

  /** Regression: a call that timed out was reported as a charge that did not happen. */
  @Test
  void charge_answerLaterThanTheTimeout_isOutcomeUnknown_notTriedAgain() throws Exception {
    String url = processor(TIMEOUT.multipliedBy(4), call -> 201);

    assertThatThrownBy(() -> charge(url)).isInstanceOf(ProcessorClient.OutcomeUnknown.class);
    assertThat(processor.calls()).isEqualTo(1);
  }

  @Test
  void charge_connectionRefused_isNotCharged() throws Exception {
    int closedPort;
    try (ServerSocket socket = new ServerSocket(0)) {
      closedPort = socket.getLocalPort();
    }

    assertThatThrownBy(() -> charge("http://127.0.0.1:" + closedPort + CardProcessor.PATH))
        .isInstanceOf(ProcessorClient.NotCharged.class);
  }

  @Test
  void charge_processorAnswers503EveryTime_isNotCharged_afterEveryTry() throws Exception {
    String url = processor(Duration.ZERO, call -> 503);

    assertThatThrownBy(() -> charge(url)).isInstanceOf(ProcessorClient.NotCharged.class);
    assertThat(processor.calls()).isEqualTo(ProcessorClient.ATTEMPTS);
  }

  @Test
  void charge_processorRefusesTheCharge_isNotCharged_notTriedAgain() throws Exception {
    String url = processor(Duration.ZERO, call -> 422);

    assertThatThrownBy(() -> charge(url)).isInstanceOf(ProcessorClient.NotCharged.class);
    assertThat(processor.calls()).isEqualTo(1);
  }

  /** 409: a charge with the same key is in progress at the processor, and may land. */
  @Test
  void charge_processorAnswers409_isOutcomeUnknown() throws Exception {
    String url = processor(Duration.ZERO, call -> 409);

    assertThatThrownBy(() -> charge(url)).isInstanceOf(ProcessorClient.OutcomeUnknown.class);
    assertThat(processor.calls()).isEqualTo(ProcessorClient.ATTEMPTS);
  }

  @Test
  void charge_anEarlierTryMayHaveCharged_laterTriesAnswer503_isOutcomeUnknown() throws Exception {
    String url = processor(Duration.ZERO, call -> call == 1 ? 504 : 503);

    assertThatThrownBy(() -> charge(url)).isInstanceOf(ProcessorClient.OutcomeUnknown.class);
    assertThat(processor.calls()).isEqualTo(ProcessorClient.ATTEMPTS);
  }

  @Test
  void charge_aLaterTryAnswersWithTheCharge_returnsItsId() throws Exception {
    String url = processor(Duration.ZERO, call -> call == 1 ? 409 : 201);

    assertThat(charge(url)).isEqualTo(FakeProcessor.CHARGE_ID);
    assertThat(processor.calls()).isEqualTo(2);
  }

  /** The request went out and the connection broke before an answer: it may have charged. */
  @Test
  void charge_connectionBrokenAfterTheRequestWentOut_isOutcomeUnknown() throws Exception {
    breaking = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    AtomicInteger dropped = new AtomicInteger();
    Thread breaker = new Thread(() -> {
      while (!breaking.isClosed()) {
        try (Socket connection = breaking.accept()) {
          awaitBody(connection.getInputStream());
          dropped.incrementAndGet();
        } catch (IOException e) {
          // closed by the test
        }
      }
    }, "breaker");
    breaker.setDaemon(true);
    breaker.start();

    assertThatThrownBy(
            () -> charge("http://127.0.0.1:" + breaking.getLocalPort() + CardProcessor.PATH))
        .isInstanceOf(ProcessorClient.OutcomeUnknown.class);
    assertThat(dropped.get()).isBetween(1, ProcessorClient.ATTEMPTS);
  }

  /** Reads until the charge's body has arrived (it ends the request), or the stream ends. */
  private static void awaitBody(InputStream in) throws IOException {
    StringBuilder request = new StringBuilder();
    byte[] buffer = new byte[4096];
    while (request.indexOf("\"currency\":\"EUR\"}") < 0) {
      int n = in.read(buffer);
      if (n < 0) {
        return;
      }
      request.append(new String(buffer, 0, n, StandardCharsets.UTF_8));
    }
  }
}
