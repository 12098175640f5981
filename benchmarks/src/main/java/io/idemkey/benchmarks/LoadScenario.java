package io.idemkey.benchmarks;

import java.nio.charset.StandardCharsets;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;

/**
 * One kind of request that the load harness sends over and over, and what a good answer to it
 * is.
 *
 * @param name the scenario's name in the results
 * @param description what it measures, for the report
 * @param requests the bytes of the {@code sequence}-th request on connection {@code connection}
 * @param expectedStatus the status of a good answer
 * @param expectReplayed whether a good answer carries {@code Idempotent-Replayed: true}
 */
record LoadScenario(
    String name, String description, RequestSource requests, int expectedStatus,
    boolean expectReplayed) {

  /** The body of every POST: a payment as SPEC §11 describes it. */
  static final byte[] PAYMENT = "{\"amount\":1250,\"currency\":\"EUR\"}"
      .getBytes(StandardCharsets.US_ASCII);

  /** Makes the bytes of one request; called from each connection's own thread. */
  @FunctionalInterface
  interface RequestSource {
    byte[] request(int connection, long sequence);
  }

  /** This scenario under another name and description. */
  LoadScenario renamed(String newName, String newDescription) {
    return new LoadScenario(newName, newDescription, requests, expectedStatus, expectReplayed);
  }

  boolean isGood(HttpConnection.Response response) {
    return response.status() == expectedStatus && response.replayed() == expectReplayed;
  }

  /** The same request every time. */
  static LoadScenario fixed(String name, String description, String path) {
    byte[] request = HttpConnection.request("POST", path, "", PAYMENT);
    return new LoadScenario(name, description, (connection, sequence) -> request, 201, false);
  }

  /**
   * {@code POST /payments} with a key never sent before: a random UUID, as clients make them, so
   * that new keys land all over the key index rather than at one end of it.
   */
  static LoadScenario newKeys(String name, String description) {
    return new LoadScenario(
        name,
        description,
        (connection, sequence) -> {
          ThreadLocalRandom random = ThreadLocalRandom.current();
          UUID key = new UUID(random.nextLong(), random.nextLong());
          return HttpConnection.request(
              "POST", "/payments", "Idempotency-Key: " + key + "\r\n", PAYMENT);
        },
        201,
        false);
  }

  /** {@code POST /payments} with one of {@code keys}, each completed before. */
  static LoadScenario replay(String[] keys) {
    byte[][] requests = new byte[keys.length][];
    for (int i = 0; i < keys.length; i++) {
      requests[i] = HttpConnection.request(
          "POST", "/payments", "Idempotency-Key: " + keys[i] + "\r\n", PAYMENT);
    }
    return new LoadScenario(
        "replay",
        "POST /payments with one of " + keys.length + " keys completed before: replayed from"
            + " the cache",
        (connection, sequence) -> requests[(int) ((connection + sequence) % requests.length)],
        201,
        true);
  }
}
