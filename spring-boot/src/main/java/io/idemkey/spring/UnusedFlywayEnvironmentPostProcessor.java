package io.idemkey.spring;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Map;
import org.springframework.boot.SpringApplication;
import org.springframework.core.Ordered;
import org.springframework.core.env.ConfigurableEnvironment;
import org.springframework.core.env.MapPropertySource;
import org.springframework.core.io.support.PathMatchingResourcePatternResolver;
import org.springframework.core.io.support.ResourcePatternResolver;
import org.springframework.util.ClassUtils;

/**
 * Keeps Spring Boot 3.5's own Flyway auto-configuration off in an application that has no
 * Flyway migrations of its own.
 *
 * <p>The starter brings flyway-core (idemkey's migrations use it, with a history table of their
 * own). On Boot 3.5 that jar alone switches Boot's Flyway auto-configuration on, which then
 * refuses to start on any schema that already holds tables ("Found non-empty schema(s) ... but no
 * schema history table"): adding the starter would break an application that never used Flyway.
 * So, on Boot 3.5 only (Boot 4 has that auto-configuration in a module of its own, which an
 * application adds when it uses Flyway), when neither {@code spring.flyway.enabled} nor {@code
 * spring.flyway.locations} is set and nothing is at Boot's default location {@code
 * classpath:db/migration}, this adds {@code spring.flyway.enabled=false} as a default, last in
 * the environment: any setting of the application's wins. An application with migrations keeps
 * Boot's Flyway, which runs before idemkey's own (the store depends on database initialization).
 *
 * <p>Stateless.
 */
@SuppressWarnings("deprecation") // org.springframework.boot.env's: the one both Boot lines load
final class UnusedFlywayEnvironmentPostProcessor
    implements org.springframework.boot.env.EnvironmentPostProcessor, Ordered {

  static final String BOOT3_FLYWAY_AUTO_CONFIGURATION =
      "org.springframework.boot.autoconfigure.flyway.FlywayAutoConfiguration";
  static final String SOURCE_NAME = "idemkeyUnusedFlyway";

  @Override
  public void postProcessEnvironment(
      ConfigurableEnvironment environment, SpringApplication application) {
    ClassLoader loader = application.getClassLoader();
    if (!ClassUtils.isPresent(BOOT3_FLYWAY_AUTO_CONFIGURATION, loader)
        || environment.containsProperty("spring.flyway.enabled")
        || environment.containsProperty("spring.flyway.locations")
        || hasMigrations(new PathMatchingResourcePatternResolver(loader))) {
      return;
    }
    environment.getPropertySources().addLast(
        new MapPropertySource(SOURCE_NAME, Map.of("spring.flyway.enabled", "false")));
  }

  static boolean hasMigrations(ResourcePatternResolver resources) {
    try {
      return resources.getResources("classpath*:db/migration/**").length > 0;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @Override
  public int getOrder() {
    return Ordered.LOWEST_PRECEDENCE;
  }
}
