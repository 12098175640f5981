package io.idemkey.spring;

import io.idemkey.filter.InvalidConfigurationException;
import org.springframework.boot.diagnostics.FailureAnalysis;
import org.springframework.boot.diagnostics.FailureAnalyzer;

/**
 * Spring Boot's "APPLICATION FAILED TO START" report for a bad {@code idempotency.*} property:
 * each property involved with its value and origin, and the rule it breaks, instead of a stack
 * trace that starts with "Unable to start embedded Tomcat". Other refusals of the filter's
 * configuration ({@link InvalidConfigurationException}: no DataSource for the keys, a keys table
 * that is not idemkey's) are reported by their message. Stateless.
 */
public final class IdempotencyFailureAnalyzer implements FailureAnalyzer {

  @Override
  public FailureAnalysis analyze(Throwable failure) {
    InvalidConfigurationException refused = null;
    for (Throwable cause = failure; cause != null; cause = cause.getCause()) {
      if (cause instanceof IdempotencyPropertyException property) {
        return analysis(property);
      }
      if (refused == null && cause instanceof InvalidConfigurationException invalid) {
        refused = invalid;
      }
      if (cause.getCause() == cause) {
        break;
      }
    }
    if (refused == null) {
      return null;
    }
    return new FailureAnalysis("The idemkey filter's configuration was refused:\n\n    "
        + refused.getMessage(),
        "Fix the idempotency.* configuration (idemkey's README, \"Configuration\").", refused);
  }

  private static FailureAnalysis analysis(IdempotencyPropertyException failure) {
    StringBuilder description = new StringBuilder("Invalid idemkey configuration:\n");
    for (IdempotencyPropertyException.Source source : failure.sources()) {
      description.append("\n    Property: ").append(source.name())
          .append("\n    Value:    \"").append(source.value()).append('"')
          .append("\n    Origin:   ")
          .append(source.origin() == null ? "unknown" : source.origin()).append('\n');
    }
    description.append("\n    Reason:   ").append(failure.rule());
    String names = failure.sources().stream()
        .map(IdempotencyPropertyException.Source::name)
        .reduce((a, b) -> a + " and " + b)
        .orElse("the idempotency.* properties");
    return new FailureAnalysis(description.toString(),
        "Update " + names + " in your application's configuration (idemkey's README,"
            + " \"Configuration\", lists every property and its rules).", failure);
  }
}
