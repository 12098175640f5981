package io.idemkey.demo;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntUnaryOperator;

/**
 * A card processor for tests, on the JDK's HTTP server at 127.0.0.1: its n-th call (from 1) is
 * answered, after a delay, with the status a function of n gives; 201 with a charge's body.
 * Thread-safe.
 */
final class FakeProcessor implements AutoCloseable {

  static final String CHARGE_ID = "42";

  private final HttpServer server;
  private final AtomicInteger calls = new AtomicInteger();

  private FakeProcessor(Duration delay, IntUnaryOperator statusOfCall) throws IOException {
    server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    server.createContext(CardProcessor.PATH + "/charges", exchange -> {
      int status = statusOfCall.applyAsInt(calls.incrementAndGet());
      exchange.getRequestBody().readAllBytes();
      try {
        Thread.sleep(delay.toMillis());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      byte[] body = (status == 201
          ? "{\"id\":" + CHARGE_ID + ",\"amount\":1250,\"currency\":\"EUR\"}" : "{}")
          .getBytes(StandardCharsets.UTF_8);
      exchange.sendResponseHeaders(status, body.length);
      try (OutputStream out = exchange.getResponseBody()) {
        out.write(body);
      }
    });
    server.start();
  }

  /** A processor answering call n with {@code statusOfCall.applyAsInt(n)} after {@code delay}. */
  static FakeProcessor answering(Duration delay, IntUnaryOperator statusOfCall)
      throws IOException {
    return new FakeProcessor(delay, statusOfCall);
  }

  /** Its base URL, as {@code PROCESSOR_URL} takes it. */
  String url() {
    return "http://127.0.0.1:" + server.getAddress().getPort() + CardProcessor.PATH;
  }

  /** The calls that reached it so far. */
  int calls() {
    return calls.get();
  }

  @Override
  public void close() {
    server.stop(0);
  }
}
