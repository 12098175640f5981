package io.idemkey.frameworks;

import static org.assertj.core.api.Assertions.assertThat;

import jakarta.servlet.Filter;
import java.net.http.HttpResponse;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.springframework.web.context.support.AnnotationConfigWebApplicationContext;
import org.springframework.web.servlet.DispatcherServlet;

/**
 * Spring Security 7 in front of the filter, as in a Spring application: the headers it writes when
 * the response commits reach the client on the first response and on every replay, as they do
 * without idemkey, whatever the body (SPEC §6: headers of filters in front are theirs).
 */
abstract class SpringSecurityContract extends FrameworkContract {

  static final List<String> SECURITY_HEADERS = List.of("x-content-type-options",
      "x-frame-options", "cache-control", "pragma", "expires", "x-xss-protection");

  @BeforeEach
  void startSpring() throws Exception {
    AnnotationConfigWebApplicationContext context = new AnnotationConfigWebApplicationContext();
    context.register(SpringSecurityApp.class);
    context.addBeanFactoryPostProcessor(
        beanFactory -> beanFactory.registerSingleton("executions", executions));
    // Spring Security's filter chain, found in the servlet's context once it is up.
    Filter security = (request, response, chain) ->
        context.getBean("springSecurityFilterChain", Filter.class)
            .doFilter(request, response, chain);
    start(new DispatcherServlet(context), "/",
        idempotency -> new FiltersInFront(security, idempotency));
  }

  /** The security headers of a response, names in lower case. */
  static Map<String, List<String>> securityHeaders(HttpResponse<byte[]> response) {
    Map<String, List<String>> headers = handlerHeaders(response);
    headers.keySet().retainAll(SECURITY_HEADERS);
    return headers;
  }

  // Regression: with an empty body (204, a 201 without body, sendError without a message) these
  // headers were missing from the first response and from every replay.
  @ParameterizedTest
  @ValueSource(strings = {"no-content", "created", "send-error", "json"})
  void emptyOrFullBody_securityHeadersOnFirstResponseAndReplay_asWithoutTheFilter(String endpoint)
      throws Exception {
    HttpResponse<byte[]> uncovered = post("/secured/" + endpoint, null, "{}");
    String key = key();
    HttpResponse<byte[]> first = post("/secured/" + endpoint, key, "{}");
    HttpResponse<byte[]> replay = post("/secured/" + endpoint, key, "{}");

    Map<String, List<String>> expected = securityHeaders(uncovered);
    if (endpoint.equals("send-error")) {
      // Uncovered, the container's error page sets its own caching headers; idemkey captures
      // sendError as a status without a page (README), so Spring Security's are the ones expected.
      expected = securityHeaders(post("/secured/no-content", null, "{}"));
    }
    assertThat(expected).containsKeys("x-content-type-options", "x-frame-options",
        "cache-control");
    assertThat(securityHeaders(first)).isEqualTo(expected);
    assertThat(replay.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(securityHeaders(replay)).isEqualTo(expected);
    assertThat(replay.statusCode()).isEqualTo(first.statusCode());
    assertThat(executions.of(endpoint)).isEqualTo(2); // the uncovered request and the first
    assertThat(first.statusCode()).isEqualTo(
        endpoint.equals("send-error") ? 409 : uncovered.statusCode());
  }
}
