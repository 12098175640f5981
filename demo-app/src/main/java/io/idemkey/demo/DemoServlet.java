package io.idemkey.demo;

import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * A demo servlet that serves only the methods it names: any other gets 405 problem+json with
 * {@code Allow}, {@code TRACE} included (which {@link HttpServlet} would answer by echoing the
 * request's headers, {@code Authorization} among them), and {@code PATCH} (which it would answer
 * 501 in plain text). {@code OPTIONS} answers 204 with {@code Allow}. Thread-safe.
 */
abstract class DemoServlet extends HttpServlet {

  private final Set<String> allowed;
  private final String allow;

  /** @param methods the methods the subclass implements ({@code GET} brings {@code HEAD}) */
  DemoServlet(String... methods) {
    Set<String> all = new LinkedHashSet<>(List.of(methods));
    if (all.contains("GET")) {
      all.add("HEAD");
    }
    all.add("OPTIONS");
    this.allowed = Set.copyOf(all);
    this.allow = String.join(", ", all);
  }

  @Override
  protected void service(HttpServletRequest request, HttpServletResponse response)
      throws ServletException, IOException {
    String method = request.getMethod();
    if (method.equals("OPTIONS")) {
      response.setHeader("Allow", allow);
      response.setStatus(204);
    } else if (allowed.contains(method)) {
      super.service(request, response);
    } else {
      response.setHeader("Allow", allow);
      PaymentsServlet.problem(response, 405, method + " is not allowed here; allowed: " + allow);
    }
  }
}
