package io.idemkey.filter;

import jakarta.servlet.http.Cookie;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import jakarta.servlet.http.Part;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The handler behind the filter in the HTTP tests. By default it answers 201 JSON naming the run
 * and echoing the body; query parameters make it slow, fail, use the writer, and so on.
 */
final class TestHandler extends HttpServlet {

  final AtomicInteger executions = new AtomicInteger();
  /** Counted down by a test once its client has the first bytes of a streamed response. */
  final CountDownLatch clientHasBytes = new CountDownLatch(1);
  /** Whether the client had bytes of a streamed response while the handler was still writing. */
  volatile boolean clientHadBytesMidStream;
  /** The most bytes a ResponseCapture had room for while the handler streamed; -1 if none. */
  volatile int largestCaptureBuffer = -1;
  /** Holds each request with {@code ?gate=1} (after counting it) until a test counts it down. */
  volatile CountDownLatch gate = new CountDownLatch(0);
  private final String node;

  TestHandler() {
    this("main");
  }

  /** A handler that names {@code node} in its JSON bodies, to tell nodes' responses apart. */
  TestHandler(String node) {
    this.node = node;
  }

  @Override
  protected void service(HttpServletRequest request, HttpServletResponse response)
      throws IOException {
    if (request.getDispatcherType() == jakarta.servlet.DispatcherType.ASYNC) {
      // Dispatched back after startAsync (as Spring's DeferredResult and Callable do).
      response.setStatus(201);
      response.setContentType("text/plain;charset=UTF-8");
      response.getWriter().write("dispatched run " + executions.get());
      return;
    }
    int run = executions.incrementAndGet();
    if (request.getParameter("dispatch") != null) {
      jakarta.servlet.AsyncContext async = request.startAsync();
      async.start(async::dispatch);
      return;
    }
    if (request.getParameter("gate") != null) {
      try {
        gate.await(60, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    String delay = request.getParameter("delayMs");
    if (delay != null) {
      try {
        Thread.sleep(Long.parseLong(delay));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    if (request.getParameter("writerType") != null) {
      response.setStatus(201);
      response.setContentType(request.getParameter("writerType"));
      if (request.getParameter("locale") != null) {
        response.setLocale(Locale.GERMANY);
      }
      response.getWriter().write("caf\u00e9 \u20ac");
      return;
    }
    if (request.getParameter("reset") != null) {
      response.getWriter();
      response.reset();
      response.setStatus(201);
      response.getOutputStream().write("ok".getBytes(StandardCharsets.UTF_8));
      return;
    }
    if (request.getParameter("redirect") != null) {
      redirect(request.getParameter("redirect"), response);
      return;
    }
    if (request.getParameter("parts") != null) {
      listParts(request, response);
      return;
    }
    if (request.getParameter("streamMiB") != null) {
      stream(Integer.parseInt(request.getParameter("streamMiB")), response);
      return;
    }
    if (request.getParameter("asyncTimeoutMs") != null) {
      // Goes asynchronous and never completes: the container times the request out.
      request.startAsync().setTimeout(Long.parseLong(request.getParameter("asyncTimeoutMs")));
      return;
    }
    if (request.getParameter("fallbackOnTimeoutMs") != null) {
      answerInOwnTimeout(request, Long.parseLong(request.getParameter("fallbackOnTimeoutMs")), run);
      return;
    }
    if (request.getParameter("async") != null) {
      jakarta.servlet.AsyncContext async = request.startAsync();
      async.start(() -> {
        try {
          HttpServletResponse asyncResponse = (HttpServletResponse) async.getResponse();
          asyncResponse.setStatus(202);
          asyncResponse.setContentType("text/plain");
          asyncResponse.getOutputStream().write(("async run " + run).getBytes(StandardCharsets.UTF_8));
          asyncResponse.flushBuffer();
          async.complete();
        } catch (IOException e) {
          throw new java.io.UncheckedIOException(e);
        }
      });
      return;
    }
    if (request.getParameter("throw") != null) {
      throw new IllegalStateException("handler failed");
    }
    if (request.getParameter("error") != null) {
      response.sendError(Integer.parseInt(request.getParameter("error")), "error page");
      return;
    }
    if (request.getParameter("form") != null) {
      response.setStatus(200);
      response.setContentType("text/plain;charset=UTF-8");
      response.getWriter().write("a=" + request.getParameter("a") + " run=" + run);
      return;
    }
    response.setStatus(Integer.parseInt(valueOr(request.getParameter("status"), "201")));
    response.setHeader("X-Handler", "run " + run);
    response.addHeader("X-Multi", "one");
    response.addHeader("X-Multi", "two");
    response.setHeader("Date", "Thu, 01 Jan 2026 00:00:00 GMT");
    response.addCookie(new Cookie("session", "secret-" + run));
    if (request.getParameter("size") != null) {
      response.setContentType("application/octet-stream");
      byte[] big = new byte[Integer.parseInt(request.getParameter("size"))];
      java.util.Arrays.fill(big, (byte) 'x');
      response.getOutputStream().write(big);
      return;
    }
    if (request.getParameter("writer") != null) {
      response.setContentType("text/plain;charset=UTF-8");
      PrintWriter writer = response.getWriter();
      writer.write("h\u00e9llo w\u00f6rld \u20ac run " + run);
      writer.flush();
      response.flushBuffer();
      response.setHeader("X-After-Flush", "still settable");
      return;
    }
    response.setContentType("application/json");
    String body = new String(request.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    response.getOutputStream().write(
        ("{\"node\":\"" + node + "\",\"run\":" + run + ",\"echo\":\"" + body.replace("\"", "'") + "\"}")
            .getBytes(StandardCharsets.UTF_8));
    response.getOutputStream().flush();
  }

  /**
   * Goes asynchronous and answers in its own timeout listener (the Servlet fallback pattern): 200
   * with a body naming the run, then complete().
   */
  private static void answerInOwnTimeout(HttpServletRequest request, long timeoutMs, int run) {
    jakarta.servlet.AsyncContext async = request.startAsync();
    async.setTimeout(timeoutMs);
    async.addListener(new jakarta.servlet.AsyncListener() {
      @Override
      public void onTimeout(jakarta.servlet.AsyncEvent event) throws IOException {
        HttpServletResponse response = (HttpServletResponse) event.getAsyncContext().getResponse();
        response.setStatus(200);
        response.setContentType("application/json");
        response.getOutputStream().write(
            ("{\"status\":\"pending\",\"run\":" + run + "}").getBytes(StandardCharsets.UTF_8));
        event.getAsyncContext().complete();
      }

      @Override
      public void onComplete(jakarta.servlet.AsyncEvent event) {}

      @Override
      public void onError(jakarta.servlet.AsyncEvent event) {}

      @Override
      public void onStartAsync(jakarta.servlet.AsyncEvent event) {}
    });
  }

  /** The Servlet 6.1 overloads, after a body that only {@code clearBuffer=false} keeps. */
  private static void redirect(String overload, HttpServletResponse response) throws IOException {
    response.getOutputStream().write("moved".getBytes(StandardCharsets.UTF_8));
    switch (overload) {
      case "int" -> response.sendRedirect("/payments/42", 303);
      case "boolean" -> response.sendRedirect("/payments/42", false);
      case "int-boolean" -> response.sendRedirect("/payments/42", 307, true);
      default -> throw new IllegalArgumentException(overload);
    }
  }

  /** Answers with the form field {@code a} and each part's name, file name and content. */
  private static void listParts(HttpServletRequest request, HttpServletResponse response)
      throws IOException {
    StringBuilder text = new StringBuilder("a=" + request.getParameter("a") + " parts=");
    try {
      for (Part part : request.getParts()) {
        text.append(part.getName()).append(':').append(part.getSubmittedFileName()).append(':')
            .append(new String(part.getInputStream().readAllBytes(), StandardCharsets.UTF_8))
            .append(';');
      }
      response.setStatus(201);
    } catch (jakarta.servlet.ServletException | IllegalStateException e) {
      response.setStatus(400);
      text.append("getParts failed: ").append(e.getMessage());
    }
    response.setContentType("text/plain;charset=UTF-8");
    response.getOutputStream().write(text.toString().getBytes(StandardCharsets.UTF_8));
  }

  /**
   * Writes {@code mib} MiB in 64 KiB chunks, chunk i filled with the byte i; after 2 MiB, waits
   * (up to 10 s) for the client to have the first bytes.
   */
  private void stream(int mib, HttpServletResponse response) throws IOException {
    response.setStatus(200);
    response.setContentType("application/octet-stream");
    OutputStream out = response.getOutputStream();
    byte[] chunk = new byte[64 * 1024];
    for (int i = 0; i < mib * 16; i++) {
      java.util.Arrays.fill(chunk, (byte) i);
      out.write(chunk);
      if (response instanceof ResponseCapture capture) {
        largestCaptureBuffer = Math.max(largestCaptureBuffer, capture.bufferCapacity());
      }
      if (i == 32) {
        try {
          clientHadBytesMidStream = clientHasBytes.await(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
    }
  }

  private static String valueOr(String value, String fallback) {
    return value == null ? fallback : value;
  }
}
