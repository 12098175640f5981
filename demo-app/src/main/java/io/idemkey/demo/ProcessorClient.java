package io.idemkey.demo;

import jakarta.servlet.http.HttpServletRequest;
import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.time.Duration;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Charges a payment at the card processor over HTTP ({@link CardProcessor}): at {@code
 * PROCESSOR_URL} / {@code demo.processor-url} when set (e.g. {@code
 * http://127.0.0.1:8081/processor}), else at the node that took the payment. A charge that fails
 * says which of two things is true: this call certainly did not charge the card ({@link
 * NotCharged}), or whether it did is unknown ({@link OutcomeUnknown}); the payment's answer must
 * not say the first when only the second is known. Thread-safe.
 */
final class ProcessorClient {

  /** The processor's answer is awaited this long (beyond its own wait for a duplicate). */
  static final Duration TIMEOUT = Duration.ofSeconds(30);
  /** Tries of one charge, each with the same key. */
  static final int ATTEMPTS = 3;
  private static final Pattern ID = Pattern.compile("\"id\":(\\d+)");

  private final String configuredUrl;
  private final Duration timeout;
  private final HttpClient client =
      HttpClient.newBuilder()
          .version(HttpClient.Version.HTTP_1_1)
          .connectTimeout(Duration.ofSeconds(2))
          .build();

  ProcessorClient() {
    this(DemoSettings.setting("PROCESSOR_URL", "demo.processor-url", null), TIMEOUT);
  }

  /**
   * @param configuredUrl the processor's base URL, or null for the node that took the payment
   * @param timeout how long an answer is awaited
   */
  ProcessorClient(String configuredUrl, Duration timeout) {
    this.configuredUrl = configuredUrl;
    this.timeout = timeout;
  }

  /** A charge that gave no charge id. */
  abstract static sealed class ChargeFailed extends Exception permits NotCharged, OutcomeUnknown {
    ChargeFailed(String message, Throwable cause) {
      super(message, cause);
    }
  }

  /**
   * No try of this call charged the card: none reached the processor (its connection was refused
   * or not made), or the processor refused the charge (a 4xx other than 409), or failed before it
   * charged (a 500 or 503 of its own: it charges in the transaction that stores its answer, so a
   * 5xx rolled the charge back). An earlier call with the same key may have charged.
   */
  static final class NotCharged extends ChargeFailed {
    NotCharged(String message, Throwable cause) {
      super(message, cause);
    }
  }

  /**
   * Whether the card was charged is unknown: a try reached the processor and its answer did not
   * come in time, or its connection broke after the request went out, or the processor answered
   * 409 (a charge with the same key is in progress there), or a success without a charge id, or
   * something between answered 502 or 504. A retry with the same key charges at most once: the
   * processor deduplicates by it.
   */
  static final class OutcomeUnknown extends ChargeFailed {
    OutcomeUnknown(String message, Throwable cause) {
      super(message, cause);
    }
  }

  /**
   * Charges {@code payment} with {@code idempotencyKey}, and returns the charge's id. An answer
   * that says try again (409, 5xx) or a broken or refused connection is tried again, twice, after
   * a short pause: with the same key, that is safe, and a processor whose connections just came
   * back from a database restart answers the next try. An answer that does not come in time is
   * not tried again (the processor may still be charging).
   *
   * @param delayMs the processor's test delay in milliseconds (0: none)
   * @throws NotCharged if no try of this call charged the card
   * @throws OutcomeUnknown if a try may have charged it
   */
  String charge(HttpServletRequest paymentRequest, PaymentRequest payment, String idempotencyKey,
      long delayMs) throws ChargeFailed {
    String base = configuredUrl != null
        ? configuredUrl
        : "http://127.0.0.1:" + paymentRequest.getLocalPort() + CardProcessor.PATH;
    HttpRequest request =
        HttpRequest.newBuilder(
                URI.create(base + "/charges" + (delayMs > 0 ? "?delayMs=" + delayMs : "")))
            .timeout(timeout)
            .header("Idempotency-Key", idempotencyKey)
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(
                "{\"amount\":" + payment.amount() + ",\"currency\":\"" + payment.currency()
                    + "\"}"))
            .build();
    // Once a try may have charged, the charge's outcome stays unknown whatever the later tries
    // answer, unless one of them answers with the charge (the same key: the same charge).
    String mayHaveCharged = null;
    for (int attempt = 1; ; attempt++) {
      String failure;
      IOException cause = null;
      try {
        HttpResponse<String> response = client.send(request, HttpResponse.BodyHandlers.ofString());
        int status = response.statusCode();
        Matcher id = ID.matcher(response.body());
        if (status == 201 && id.find()) {
          return id.group(1);
        }
        failure = "the card processor answered " + status;
        if (status / 100 == 2) {
          throw new OutcomeUnknown(failure + " without a charge id", null);
        }
        if (status == 409 || status == 502 || status == 504) {
          mayHaveCharged = failure;
        } else if (status < 500) {
          throw ended(mayHaveCharged, failure, null);
        }
      } catch (HttpConnectTimeoutException | ConnectException e) {
        failure = "the card processor cannot be reached: " + e;
        cause = e;
      } catch (HttpTimeoutException e) {
        throw new OutcomeUnknown("the card processor did not answer within " + timeout, e);
      } catch (IOException e) {
        failure = "the connection to the card processor broke: " + e;
        cause = e;
        mayHaveCharged = failure;
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new OutcomeUnknown("interrupted while charging", e);
      }
      if (attempt == ATTEMPTS) {
        throw ended(mayHaveCharged, failure, cause);
      }
      try {
        Thread.sleep(200L * attempt);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw ended(mayHaveCharged, "interrupted while charging", e);
      }
    }
  }

  /** The failure of a charge whose last try failed with {@code failure}. */
  private static ChargeFailed ended(String mayHaveCharged, String failure, Throwable cause) {
    return mayHaveCharged == null
        ? new NotCharged(failure, cause)
        : new OutcomeUnknown(failure + "; an earlier try may have charged: " + mayHaveCharged,
            cause);
  }
}
