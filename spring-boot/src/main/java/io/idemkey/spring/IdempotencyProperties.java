package io.idemkey.spring;

import io.idemkey.filter.IdempotencyConfig;
import io.idemkey.filter.InvalidConfigurationException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.springframework.boot.context.properties.bind.Bindable;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.ConfigurationProperty;
import org.springframework.boot.context.properties.source.ConfigurationPropertyName;
import org.springframework.boot.context.properties.source.ConfigurationPropertySource;
import org.springframework.boot.context.properties.source.ConfigurationPropertySources;
import org.springframework.boot.context.properties.source.IterableConfigurationPropertySource;
import org.springframework.core.env.Environment;
import org.springframework.core.env.PropertySource;
import org.springframework.core.env.StandardEnvironment;

/**
 * The {@code idempotency.*} properties as Spring's Environment has them (application.properties
 * or YAML, profiles, system properties, environment variables, ...), read by name for each
 * property that {@link IdempotencyConfig} knows, as text, so that every value is parsed and
 * validated by {@link IdempotencyConfig.Builder#set(String, String)} exactly as for the plain
 * filter. A YAML list ({@code methods: [POST, PUT]}) is read as its comma-separated text.
 *
 * <p>An {@code idempotency.*} property that neither the filter nor the starter knows fails the
 * start, as it does for the plain filter (a typo such as {@code idempotency.leese} would
 * otherwise leave the default in force unnoticed); environment variables are not checked, as
 * for the plain filter. Failures carry each property's value and origin ({@link
 * IdempotencyPropertyException}).
 *
 * <p>Immutable and thread-safe.
 */
final class IdempotencyProperties {

  /** Turns the auto-configuration off ({@code false}); Spring Boot only. */
  static final String ENABLED = "idempotency.enabled";
  /** The filter's order among the servlet filters; Spring Boot only. */
  static final String FILTER_ORDER = "idempotency.filter-order";

  // Spring Kafka listener support (IdempotencyKafkaProperties reads them). Here, without the
  // Kafka types, so that the check of unknown properties knows them in every application.
  static final String KAFKA_ENABLED = "idempotency.kafka.enabled";
  static final String KAFKA_KEYS = "idempotency.kafka.keys";
  static final String KAFKA_TABLE = "idempotency.kafka.table";
  static final String KAFKA_TRANSACTIONAL = "idempotency.kafka.transactional";
  static final String KAFKA_LEASE = "idempotency.kafka.lease";
  static final String KAFKA_TTL = "idempotency.kafka.ttl";
  static final String KAFKA_WAIT_TIMEOUT = "idempotency.kafka.wait-timeout";
  /** Every Kafka listener property. */
  static final List<String> KAFKA_NAMES = List.of(KAFKA_ENABLED, KAFKA_KEYS, KAFKA_TABLE,
      KAFKA_TRANSACTIONAL, KAFKA_LEASE, KAFKA_TTL, KAFKA_WAIT_TIMEOUT);

  static final String JDBC_URL = "idempotency.jdbc.url";
  static final String JDBC_USERNAME = "idempotency.jdbc.username";
  static final String JDBC_PASSWORD = "idempotency.jdbc.password";
  static final String INCLUDE_PATHS = "idempotency.include-paths";

  /**
   * After Spring Security's filter chain (order -100), so that the principal that scopes keys is
   * known; before the application's own filters (order 0 and later) and its handlers.
   */
  static final int DEFAULT_FILTER_ORDER = -50;

  private static final ConfigurationPropertyName PREFIX = ConfigurationPropertyName.of("idempotency");

  private final Map<String, String> values;
  private final Map<String, String> origins;

  private IdempotencyProperties(Map<String, String> values, Map<String, String> origins) {
    this.values = values;
    this.origins = origins;
  }

  /**
   * Reads every known property present in {@code environment}.
   *
   * @throws IdempotencyPropertyException naming an {@code idempotency.*} property that is not
   *     known
   */
  static IdempotencyProperties read(Environment environment) {
    Iterable<ConfigurationPropertySource> sources = ConfigurationPropertySources.get(environment);
    refuseUnknown(sources);
    Binder binder = Binder.get(environment);
    Map<String, String> values = new LinkedHashMap<>();
    Map<String, String> origins = new LinkedHashMap<>();
    for (String name : IdempotencyConfig.propertyNames()) {
      String text = binder.bind(name, Bindable.of(String.class)).orElse(null);
      if (text == null) {
        List<String> list = binder.bind(name, Bindable.listOf(String.class)).orElse(null);
        text = list == null ? null : String.join(",", list);
      }
      if (text != null) {
        values.put(name, text);
        String origin = origin(sources, name);
        if (origin != null) {
          origins.put(name, origin);
        }
      }
    }
    return new IdempotencyProperties(Map.copyOf(values), Map.copyOf(origins));
  }

  /**
   * The configuration.
   *
   * @throws IdempotencyPropertyException naming the property, its value and origin, on a bad
   *     value or combination
   */
  IdempotencyConfig toConfig() {
    IdempotencyConfig.Builder builder = IdempotencyConfig.builder();
    for (Map.Entry<String, String> entry : values.entrySet()) {
      try {
        builder.set(entry.getKey(), entry.getValue());
      } catch (InvalidConfigurationException e) {
        throw new IdempotencyPropertyException(List.of(source(entry.getKey())), e.getMessage(), e);
      }
    }
    try {
      return builder.build();
    } catch (InvalidConfigurationException e) {
      // A combination: the message names the properties involved.
      List<IdempotencyPropertyException.Source> involved = new ArrayList<>();
      for (String name : values.keySet()) {
        if (e.getMessage() != null && e.getMessage().contains(name)) {
          involved.add(source(name));
        }
      }
      throw new IdempotencyPropertyException(involved, e.getMessage(), e);
    }
  }

  private IdempotencyPropertyException.Source source(String name) {
    return new IdempotencyPropertyException.Source(name, values.get(name), origins.get(name));
  }

  /** Where {@code name} (or its first list element) comes from in the winning source. */
  private static String origin(Iterable<ConfigurationPropertySource> sources, String name) {
    ConfigurationPropertyName property = ConfigurationPropertyName.of(name);
    for (ConfigurationPropertySource source : sources) {
      ConfigurationProperty found = source.getConfigurationProperty(property);
      if (found == null) {
        found = source.getConfigurationProperty(property.append("[0]"));
      }
      if (found != null) {
        return found.getOrigin() == null
            ? String.valueOf(source.getUnderlyingSource()) : found.getOrigin().toString();
      }
    }
    return null;
  }

  /** @throws IdempotencyPropertyException on the first unknown {@code idempotency.*} property */
  private static void refuseUnknown(Iterable<ConfigurationPropertySource> sources) {
    List<ConfigurationPropertyName> known = new ArrayList<>();
    for (String name : IdempotencyConfig.propertyNames()) {
      known.add(ConfigurationPropertyName.of(name));
    }
    known.add(ConfigurationPropertyName.of(ENABLED));
    known.add(ConfigurationPropertyName.of(FILTER_ORDER));
    for (String name : KAFKA_NAMES) {
      known.add(ConfigurationPropertyName.of(name));
    }
    for (ConfigurationPropertySource source : sources) {
      if (!(source instanceof IterableConfigurationPropertySource iterable)
          || isEnvironmentVariables(source.getUnderlyingSource())) {
        continue;
      }
      List<ConfigurationPropertyName> names =
          iterable.filter(PREFIX::isAncestorOf).stream().toList();
      for (ConfigurationPropertyName name : names) {
        ConfigurationPropertyName property = name;
        while (property.isLastElementIndexed()) {
          property = property.getParent(); // methods[0] is methods
        }
        if (!known.contains(property)) {
          ConfigurationProperty found = iterable.getConfigurationProperty(name);
          throw new IdempotencyPropertyException(
              List.of(new IdempotencyPropertyException.Source(name.toString(),
                  found == null ? "" : String.valueOf(found.getValue()),
                  found == null || found.getOrigin() == null ? null
                      : found.getOrigin().toString())),
              "unknown property " + name + nearest(property, known), null);
        }
      }
    }
  }

  private static boolean isEnvironmentVariables(Object source) {
    return source instanceof PropertySource<?> propertySource
        && propertySource.getName().equals(
            StandardEnvironment.SYSTEM_ENVIRONMENT_PROPERTY_SOURCE_NAME);
  }

  /** "; did you mean idempotency.x?" for the known name nearest a typo, or nothing. */
  private static String nearest(ConfigurationPropertyName typo, List<ConfigurationPropertyName> known) {
    String best = null;
    int bestDistance = Integer.MAX_VALUE;
    for (ConfigurationPropertyName name : known) {
      int distance = distance(typo.toString(), name.toString());
      if (distance < bestDistance) {
        best = name.toString();
        bestDistance = distance;
      }
    }
    return bestDistance <= 3 ? "; did you mean " + best + "?" : " (idemkey has no such setting)";
  }

  /** The Levenshtein distance between {@code a} and {@code b}. */
  private static int distance(String a, String b) {
    int[] previous = new int[b.length() + 1];
    int[] current = new int[b.length() + 1];
    for (int j = 0; j <= b.length(); j++) {
      previous[j] = j;
    }
    for (int i = 1; i <= a.length(); i++) {
      current[0] = i;
      for (int j = 1; j <= b.length(); j++) {
        int substitution = previous[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
        current[j] = Math.min(substitution, Math.min(previous[j], current[j - 1]) + 1);
      }
      int[] swap = previous;
      previous = current;
      current = swap;
    }
    return previous[b.length()];
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
