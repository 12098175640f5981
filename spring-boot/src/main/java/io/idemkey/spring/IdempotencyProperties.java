package io.idemkey.spring;

import io.idemkey.filter.IdempotencyConfig;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.springframework.boot.context.properties.bind.Bindable;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.core.env.Environment;

/**
 * The {@code idempotency.*} properties as Spring's Environment has them (application.properties
 * or YAML, profiles, system properties, environment variables, ...), read by name for each
 * property that {@link IdempotencyConfig} knows, as text, so that every value is parsed and
 * validated by {@link IdempotencyConfig.Builder#set(String, String)} exactly as for the plain
 * filter. A YAML list ({@code methods: [POST, PUT]}) is read as its comma-separated text.
 *
 * <p>Immutable and thread-safe.
 */
final class IdempotencyProperties {

  /** Turns the auto-configuration off ({@code false}); Spring Boot only. */
  static final String ENABLED = "idempotency.enabled";
  /** The filter's order among the servlet filters; Spring Boot only. */
  static final String FILTER_ORDER = "idempotency.filter-order";

  static final String JDBC_URL = "idempotency.jdbc.url";
  static final String JDBC_USERNAME = "idempotency.jdbc.username";
  static final String JDBC_PASSWORD = "idempotency.jdbc.password";
  static final String INCLUDE_PATHS = "idempotency.include-paths";

  /**
   * After Spring Security's filter chain (order -100), so that the principal that scopes keys is
   * known; before the application's own filters (order 0 and later) and its handlers.
   */
  static final int DEFAULT_FILTER_ORDER = -50;

  private final Map<String, String> values;

  private IdempotencyProperties(Map<String, String> values) {
    this.values = values;
  }

  /** Reads every known property present in {@code environment}. */
  static IdempotencyProperties read(Environment environment) {
    Binder binder = Binder.get(environment);
    Map<String, String> values = new LinkedHashMap<>();
    for (String name : IdempotencyConfig.propertyNames()) {
      String text = binder.bind(name, Bindable.of(String.class)).orElse(null);
      if (text == null) {
        List<String> list = binder.bind(name, Bindable.listOf(String.class)).orElse(null);
        text = list == null ? null : String.join(",", list);
      }
      if (text != null) {
        values.put(name, text);
      }
    }
    return new IdempotencyProperties(Map.copyOf(values));
  }

  /**
   * The configuration.
   *
   * @throws io.idemkey.filter.InvalidConfigurationException naming the property on a bad value
   */
  IdempotencyConfig toConfig() {
    IdempotencyConfig.Builder builder = IdempotencyConfig.builder();
    values.forEach(builder::set);
    return builder.build();
  }

  /** The text of a property, or null when it is not set. */
  String get(String name) {
    return values.get(name);
  }

  /** The servlet URL patterns of {@code include-paths} (default {@code /*}). */
  String[] urlPatterns() {
    String paths = values.get(INCLUDE_PATHS);
    if (paths == null) {
      return new String[] {"/*"};
    }
    return java.util.Arrays.stream(paths.split(","))
        .map(String::trim)
        .filter(p -> !p.isEmpty())
        .toArray(String[]::new);
  }
}
