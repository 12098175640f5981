package io.idemkey.filter;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.store.Fingerprint;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class RequestFingerprintTest {

  static Fingerprint of(String method, String path, Map<String, List<String>> headers, String body) {
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    return RequestFingerprint.compute(
        method,
        path,
        List.of("Content-Type"),
        name -> headers.getOrDefault(name, List.of()),
        bytes,
        bytes.length);
  }

  static final Map<String, List<String>> JSON = Map.of("Content-Type", List.of("application/json"));

  @Test
  void compute_sameRequest_sameFingerprint() {
    assertThat(of("POST", "/p?a=1", JSON, "{}")).isEqualTo(of("POST", "/p?a=1", JSON, "{}"));
  }

  @Test
  void compute_anyPartChanged_differs() {
    Fingerprint base = of("POST", "/p?a=1", JSON, "{}");

    assertThat(of("PATCH", "/p?a=1", JSON, "{}")).isNotEqualTo(base);
    assertThat(of("POST", "/q?a=1", JSON, "{}")).isNotEqualTo(base);
    assertThat(of("POST", "/p?a=2", JSON, "{}")).isNotEqualTo(base);
    assertThat(of("POST", "/p?a=1", Map.of("Content-Type", List.of("text/plain")), "{}"))
        .isNotEqualTo(base);
    assertThat(of("POST", "/p?a=1", Map.of(), "{}")).isNotEqualTo(base);
    assertThat(of("POST", "/p?a=1", JSON, "{ }")).isNotEqualTo(base);
  }

  @Test
  void compute_headerNotInFingerprint_isIgnored() {
    Map<String, List<String>> withTrace =
        Map.of("Content-Type", List.of("application/json"), "X-Trace", List.of("1"));

    assertThat(of("POST", "/p", withTrace, "{}")).isEqualTo(of("POST", "/p", JSON, "{}"));
  }

  @Test
  void compute_shiftedBoundary_differs() {
    assertThat(of("POST", "/ab", JSON, "c")).isNotEqualTo(of("POST", "/a", JSON, "bc"));
    assertThat(of("POS", "T/a", JSON, "")).isNotEqualTo(of("POST", "/a", JSON, ""));
  }

  @Test
  void compute_onlyBodyLengthBytesCount() {
    byte[] padded = "{}XXXX".getBytes(StandardCharsets.UTF_8);
    Fingerprint fromPadded =
        RequestFingerprint.compute(
            "POST", "/p", List.of("Content-Type"), name -> JSON.getOrDefault(name, List.of()),
            padded, 2);

    assertThat(fromPadded).isEqualTo(of("POST", "/p", JSON, "{}"));
  }
}
