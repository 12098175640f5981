package io.idemkey.demo;

import jakarta.servlet.http.HttpServletRequest;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.time.Duration;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Charges a payment at the card processor over HTTP ({@link CardProcessor}): at {@code
 * PROCESSOR_URL} / {@code demo.processor-url} when set (e.g. {@code
 * http://127.0.0.1:8081/processor}), else at the node that took the payment. Thread-safe.
 */
final class ProcessorClient {

  /** The processor's answer is awaited this long (beyond its own wait for a duplicate). */
  static final Duration TIMEOUT = Duration.ofSeconds(30);
  /** Tries of one charge, each with the same key. */
  static final int ATTEMPTS = 3;
  private static final Pattern ID = Pattern.compile("\"id\":(\\d+)");

  private final String configuredUrl;
  private final HttpClient client =
      HttpClient.newBuilder()
          .version(HttpClient.Version.HTTP_1_1)
          .connectTimeout(Duration.ofSeconds(2))
          .build();

  ProcessorClient() {
    this.configuredUrl = DemoSettings.setting("PROCESSOR_URL", "demo.processor-url", null);
  }

  /** The processor refused or did not answer: the payment cannot go on now. */
  static final class Unavailable extends Exception {
    Unavailable(String message, Throwable cause) {
      super(message, cause);
    }
  }

  /**
   * Charges {@code payment} with {@code idempotencyKey}, and returns the charge's id. An answer
   * that says try again (409, 5xx) or a refused connection is tried again, twice, after a short
   * pause: with the same key, that is safe, and a processor whose connections just came back from
   * a database restart answers the next try.
   *
   * @param delayMs the processor's test delay in milliseconds (0: none)
   * @throws Unavailable if the processor cannot be reached or does not answer 201
   */
  String charge(HttpServletRequest paymentRequest, PaymentRequest payment, String idempotencyKey,
      long delayMs) throws Unavailable {
    String base = configuredUrl != null
        ? configuredUrl
        : "http://127.0.0.1:" + paymentRequest.getLocalPort() + CardProcessor.PATH;
    HttpRequest request =
        HttpRequest.newBuilder(
                URI.create(base + "/charges" + (delayMs > 0 ? "?delayMs=" + delayMs : "")))
            .timeout(TIMEOUT)
            .header("Idempotency-Key", idempotencyKey)
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(
                "{\"amount\":" + payment.amount() + ",\"currency\":\"" + payment.currency()
                    + "\"}"))
            .build();
    for (int attempt = 1; ; attempt++) {
      String failure;
      IOException cause = null;
      try {
        HttpResponse<String> response = client.send(request, HttpResponse.BodyHandlers.ofString());
        Matcher id = ID.matcher(response.body());
        if (response.statusCode() == 201 && id.find()) {
          return id.group(1);
        }
        failure = "the card processor answered " + response.statusCode();
        if (response.statusCode() != 409 && response.statusCode() < 500) {
          throw new Unavailable(failure, null);
        }
      } catch (HttpTimeoutException e) {
        throw new Unavailable("the card processor did not answer within " + TIMEOUT, e);
      } catch (IOException e) {
        failure = "the card processor cannot be reached: " + e.getMessage();
        cause = e;
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new Unavailable("interrupted while charging", e);
      }
      if (attempt == ATTEMPTS) {
        throw new Unavailable(failure, cause);
      }
      try {
        Thread.sleep(200L * attempt);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new Unavailable("interrupted while charging", e);
      }
    }
  }
}
