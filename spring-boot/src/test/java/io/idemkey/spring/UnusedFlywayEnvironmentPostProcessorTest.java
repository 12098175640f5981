package io.idemkey.spring;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.SpringApplication;
import org.springframework.core.env.StandardEnvironment;
import org.springframework.core.io.support.PathMatchingResourcePatternResolver;

/**
 * On Boot 4 (this module's classpath) nothing changes; the Boot 3.5 side is proven by
 * examples/spring-boot-3, an application without migrations that starts with the starter.
 */
class UnusedFlywayEnvironmentPostProcessorTest {

  @Test
  void postProcessEnvironment_boot4_leavesTheEnvironmentAlone() {
    StandardEnvironment environment = new StandardEnvironment();
    int before = environment.getPropertySources().size();

    new UnusedFlywayEnvironmentPostProcessor()
        .postProcessEnvironment(environment, new SpringApplication());

    assertThat(environment.getPropertySources().size()).isEqualTo(before);
    assertThat(environment.getProperty("spring.flyway.enabled")).isNull();
  }

  @Test
  void hasMigrations_migrationUnderDbMigration_true(@TempDir Path root) throws Exception {
    Files.createDirectories(root.resolve("db/migration"));
    Files.writeString(root.resolve("db/migration/V1__orders.sql"), "CREATE TABLE orders ();");

    assertThat(UnusedFlywayEnvironmentPostProcessor.hasMigrations(resolver(root))).isTrue();
  }

  @Test
  void hasMigrations_nothingThere_false(@TempDir Path root) throws Exception {
    assertThat(UnusedFlywayEnvironmentPostProcessor.hasMigrations(resolver(root))).isFalse();
  }

  private static PathMatchingResourcePatternResolver resolver(Path root) throws Exception {
    // Only this directory: not the test classpath, whose jars are not the question here.
    URLClassLoader loader = new URLClassLoader(new URL[] {root.toUri().toURL()}, null);
    return new PathMatchingResourcePatternResolver(loader);
  }
}
