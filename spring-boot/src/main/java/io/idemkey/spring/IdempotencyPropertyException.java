package io.idemkey.spring;

import java.util.List;

/**
 * An {@code idempotency.*} property that Spring Boot cannot start with: unknown, or a value the
 * filter's configuration refuses. It names each property involved with its value and where it
 * came from; {@link IdempotencyFailureAnalyzer} turns it into Boot's "APPLICATION FAILED TO START"
 * report. Immutable.
 */
final class IdempotencyPropertyException extends RuntimeException {

  private static final long serialVersionUID = 1L;

  /** A property as the application set it: its name, its value and its origin (or null). */
  record Source(String name, String value, String origin) {}

  private final transient List<Source> sources;
  private final String rule;

  IdempotencyPropertyException(List<Source> sources, String rule, Throwable cause) {
    super(rule, cause);
    this.sources = List.copyOf(sources);
    this.rule = rule;
  }

  /** The properties involved (none when the defaults themselves conflict). */
  List<Source> sources() {
    return sources;
  }

  /** What is wrong, as the filter's configuration says it. */
  String rule() {
    return rule;
  }
}
