package io.idemkey.demo;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.store.TestDatabase;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Issue 9: errors the demo's handlers throw and errors Jetty produces itself are answered as
 * problem+json, never as Jetty's HTML page naming a Java exception. Raw sockets, so that a
 * request can be malformed or stall.
 */
class ProblemResponsesTest {

  static DemoApp node;

  @BeforeAll
  static void start() throws Exception {
    node = DemoApp.start(
        DemoSettings.of(0, TestDatabase.jdbcUrl(), TestDatabase.user(), TestDatabase.password())
            .withIdleTimeout(Duration.ofSeconds(1)));
  }

  @AfterAll
  static void stop() {
    node.close();
  }

  /** The whole answer to {@code request}, as text; a stalled upload sends only its first part. */
  static String exchange(String request) throws IOException {
    try (Socket socket = new Socket("127.0.0.1", node.port())) {
      socket.setSoTimeout(15_000);
      return exchange(socket, request);
    }
  }

  /** The answer to {@code request} on {@code socket}, which stays open. */
  static String exchange(Socket socket, String request) throws IOException {
    OutputStream out = socket.getOutputStream();
    out.write(request.getBytes(StandardCharsets.UTF_8));
    out.flush();
    InputStream in = socket.getInputStream();
    ByteArrayOutputStream answer = new ByteArrayOutputStream();
    byte[] buffer = new byte[4096];
    try {
      for (int n; (n = in.read(buffer)) >= 0; ) {
        answer.write(buffer, 0, n);
        if (complete(answer.toString(StandardCharsets.UTF_8))) {
          break;
        }
      }
    } catch (SocketTimeoutException | java.net.SocketException e) {
      // what arrived is the answer
    }
    return answer.toString(StandardCharsets.UTF_8);
  }

  /** Whether {@code text} holds a whole response with a Content-Length body. */
  static boolean complete(String text) {
    int end = text.indexOf("\r\n\r\n");
    if (end < 0) {
      return false;
    }
    java.util.regex.Matcher length = java.util.regex.Pattern
        .compile("(?im)^content-length:\\s*(\\d+)").matcher(text.substring(0, end));
    return length.find()
        && text.getBytes(StandardCharsets.UTF_8).length >= end + 4 + Integer.parseInt(length.group(1));
  }

  static void assertProblem(String answer, int status) {
    assertThat(answer).startsWith("HTTP/1.1 " + status + " ");
    assertThat(answer).containsIgnoringCase("Content-Type: application/problem+json");
    String body = answer.substring(answer.indexOf("\r\n\r\n") + 4);
    assertThat(body).startsWith("{\"type\":\"about:blank\"")
        .contains("\"status\":" + status, "\"title\":", "\"detail\":")
        .doesNotContain("Exception", "java.", "jetty", "<html");
  }

  static String post(String path, String key, int contentLength, String bodySent) {
    return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + (key == null ? "" : "Idempotency-Key: " + key + "\r\n")
        + "Content-Length: " + contentLength + "\r\n\r\n" + bodySent;
  }

  @Test
  void handlerThrows_is500ProblemWithoutExceptionName() throws Exception {
    String body = "{\"amount\": 1250, \"currency\": \"EUR\"}";
    assertProblem(exchange(post("/bare/payments?throw=true", null, body.length(), body)), 500);
  }

  @Test
  void stalledUpload_is408Problem() throws Exception {
    assertProblem(exchange(post("/bare/payments", null, 1000, "{\"amount\":")), 408);
  }

  @Test
  void stalledUploadThroughTheFilter_is408Problem() throws Exception {
    assertProblem(
        exchange(post("/payments", UUID.randomUUID().toString(), 1000, "{\"amount\":")), 408);
  }

  @Test
  void unmappedPathAndWrongMethod_areProblems() throws Exception {
    assertProblem(exchange("GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), 404);
    assertProblem(exchange("GET /bare/static HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), 405);
  }

  @Test
  void methodsTheDemoDoesNotServe_are405ProblemsWithAllow_traceEchoesNothing() throws Exception {
    for (String method : new String[] {"PUT", "DELETE", "TRACE"}) {
      String answer = exchange(method + " /payments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          + "Authorization: Bearer secret-token\r\nContent-Length: 0\r\n\r\n");
      assertProblem(answer, 405);
      assertThat(answer).containsIgnoringCase("Allow: GET, POST, HEAD, OPTIONS")
          .doesNotContain("secret-token");
    }
    String elsewhere = exchange("TRACE /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + "Authorization: Bearer secret-token\r\n\r\n");
    assertProblem(elsewhere, 404);
    assertThat(elsewhere).doesNotContain("secret-token");
    assertProblem(exchange("DELETE /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), 405);
  }

  @Test
  void patchWithKey_is405Problem_storedAndReplayed() throws Exception {
    String key = UUID.randomUUID().toString();
    String body = "{\"amount\": 1250, \"currency\": \"EUR\"}";
    String patch = post("/payments", key, body.length(), body).replaceFirst("POST", "PATCH");
    String first = exchange(patch);
    assertProblem(first, 405);
    String again = exchange(patch);
    assertProblem(again, 405);
    assertThat(again).containsIgnoringCase("Idempotent-Replayed: true");
  }

  @Test
  void malformedRequest_is400Problem() throws Exception {
    assertProblem(exchange("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n"), 400);
  }
}
