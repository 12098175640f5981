package io.idemkey.filter;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class ProblemTest {

  @Test
  void body_isProblemJsonWithTypeTitleStatusDetail() {
    String json = new String(Problem.KEY_REUSED.body("different body"), StandardCharsets.UTF_8);

    assertThat(json)
        .isEqualTo(
            "{\"type\":\"urn:idemkey:problem:key-reused\","
                + "\"title\":\"Idempotency-Key reused for a different request\","
                + "\"status\":422,\"detail\":\"different body\"}");
  }

  @Test
  void body_detailWithQuotesAndControls_isEscaped() {
    String json =
        new String(Problem.INVALID_KEY.body("a \"q\" \\ \n\u0001"), StandardCharsets.UTF_8);

    assertThat(json).endsWith("\"detail\":\"a \\\"q\\\" \\\\ \\n\\u0001\"}");
  }

  @Test
  void status_matchesSpec() {
    assertThat(Problem.MISSING_KEY.status()).isEqualTo(400);
    assertThat(Problem.REQUEST_TOO_LARGE.status()).isEqualTo(413);
    assertThat(Problem.IN_PROGRESS.status()).isEqualTo(409);
    assertThat(Problem.STORE_UNAVAILABLE.status()).isEqualTo(503);
    assertThat(Problem.RESPONSE_NOT_STORED.type())
        .isEqualTo("urn:idemkey:problem:response-not-stored");
  }
}
