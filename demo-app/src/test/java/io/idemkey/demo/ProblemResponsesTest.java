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
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

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

  /** Every path the demo serves, with the methods it serves there (its {@code Allow}). */
  static final Map<String, String> ALLOW_BY_PATH = allowByPath();

  private static Map<String, String> allowByPath() {
    Map<String, String> served = new LinkedHashMap<>();
    served.put("/payments", "GET, POST, HEAD, OPTIONS");
    served.put("/payments/1", "GET, POST, HEAD, OPTIONS");
    served.put("/payments/x/y", "GET, POST, HEAD, OPTIONS");
    served.put("/bare/payments", "GET, POST, HEAD, OPTIONS");
    served.put("/bare/static", "POST, OPTIONS");
    served.put("/stats", "GET, HEAD, OPTIONS");
    served.put("/health", "GET, HEAD, OPTIONS");
    served.put("/processor/charges", "POST, OPTIONS");
    return served;
  }

  static Stream<String> servedPaths() {
    return ALLOW_BY_PATH.keySet().stream();
  }

  /** Paths the demo does not serve: any method, TRACE included, is 404 there. */
  static Stream<String> unservedPaths() {
    return Stream.of("/", "/nowhere", "/processor", "/processor/", "/processor/refunds",
        "/processor/charges/1", "/bare", "/bare/other", "/stats/x", "/health/x");
  }

  /** {@code method path} with credentials and a key, the connection closed after the answer. */
  static String request(String method, String path) {
    String body = "{\"amount\": 1250, \"currency\": \"EUR\"}";
    return method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + "Authorization: Bearer secret-token\r\nCookie: session=cookie-secret\r\n"
        + "Idempotency-Key: " + UUID.randomUUID() + "\r\nContent-Type: application/json\r\n"
        + "Content-Length: " + body.length() + "\r\n\r\n" + body;
  }

  static String allowOf(String answer) {
    Matcher allow = Pattern.compile("(?im)^Allow: *([^\r\n]*)").matcher(answer);
    return allow.find() ? allow.group(1) : null;
  }

  /**
   * Regression (issue 23): TRACE /processor/charges answered 200 message/http echoing
   * Authorization and Cookie.
   */
  @ParameterizedTest
  @MethodSource("servedPaths")
  void trace_onEveryPathTheDemoServes_is405ProblemWithAllow_echoesNothing(String path)
      throws Exception {
    String answer = exchange(request("TRACE", path));
    assertProblem(answer, 405);
    assertThat(allowOf(answer)).as(path).isEqualTo(ALLOW_BY_PATH.get(path));
    assertThat(answer).doesNotContain("secret-token", "cookie-secret", "message/http");
  }

  @ParameterizedTest
  @MethodSource("unservedPaths")
  void trace_onAPathTheDemoDoesNotServe_is404Problem_echoesNothing(String path) throws Exception {
    String answer = exchange(request("TRACE", path));
    assertProblem(answer, 404);
    assertThat(answer).doesNotContain("secret-token", "cookie-secret", "message/http");
  }

  /** Regression (issue 23): OPTIONS /processor/charges advertised TRACE (and GET, HEAD, PUT...). */
  @ParameterizedTest
  @MethodSource("servedPaths")
  void options_onEveryPathTheDemoServes_advertisesWhatItServes_neverTrace(String path)
      throws Exception {
    String answer = exchange(request("OPTIONS", path));
    assertThat(answer).as(path).matches("(?s)HTTP/1\\.1 20[04] .*");
    assertThat(allowOf(answer)).as(path).isEqualTo(ALLOW_BY_PATH.get(path)).doesNotContain("TRACE");
  }

  /**
   * Regression (issue 23): on /processor/charges PATCH with a key got 501 text/plain, and PUT,
   * DELETE and GET 405 without Allow. Every method a path does not serve, a made-up one included,
   * is 405 problem+json with Allow there; HEAD too, without its body.
   */
  @ParameterizedTest
  @MethodSource("servedPaths")
  void methodNotServed_onEveryPathTheDemoServes_is405ProblemWithAllow(String path)
      throws Exception {
    String allow = ALLOW_BY_PATH.get(path);
    List<String> methods = new ArrayList<>(List.of(
        "GET", "POST", "PUT", "DELETE", "PATCH", "PROPFIND", "FOO", "HEAD"));
    methods.removeAll(List.of(allow.split(", ")));
    assertThat(methods).contains("PUT", "DELETE", "PATCH", "FOO");
    for (String method : methods) {
      String answer = exchange(request(method, path));
      if (method.equals("HEAD")) {
        assertThat(answer).as(path).startsWith("HTTP/1.1 405 ");
      } else {
        assertProblem(answer, 405);
      }
      assertThat(allowOf(answer)).as(method + " " + path).isEqualTo(allow);
      assertThat(answer).doesNotContain("secret-token", "cookie-secret");
    }
  }

  /** Regression (issue 23): the processor took any delayMs and failed after charging (500). */
  @Test
  void processorCharge_malformedDelayMs_is400Problem() throws Exception {
    String answer = exchange(request("POST", "/processor/charges?delayMs=1%201"));
    assertProblem(answer, 400);
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
    assertThat(allowOf(first)).isEqualTo("GET, POST, HEAD, OPTIONS");
    assertThat(allowOf(again)).isEqualTo(allowOf(first));
  }

  @Test
  void malformedRequest_is400Problem() throws Exception {
    assertProblem(exchange("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n"), 400);
  }
}
