package io.idemkey.spring;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.filter.IdempotencyConfig;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.ObjectMapper;

/**
 * The configuration metadata IDEs read documents every property the filter knows, and the
 * configuration page (docs/configuration.md) names each one.
 */
class ConfigurationMetadataTest {

  @Test
  @SuppressWarnings("unchecked")
  void metadata_everyFilterProperty_isDocumented() throws IOException {
    Map<String, Object> metadata;
    try (InputStream in = getClass().getResourceAsStream(
        "/META-INF/spring-configuration-metadata.json")) {
      metadata = new ObjectMapper().readValue(in, Map.class);
    }
    List<String> documented = new ArrayList<>();
    for (Map<String, Object> property : (List<Map<String, Object>>) metadata.get("properties")) {
      assertThat((String) property.get("description")).as(property.get("name").toString())
          .isNotBlank();
      documented.add((String) property.get("name"));
    }

    assertThat(documented).containsAll(IdempotencyConfig.propertyNames())
        .contains(IdempotencyProperties.ENABLED, IdempotencyProperties.FILTER_ORDER)
        .doesNotHaveDuplicates();
    List<String> extra = new ArrayList<>(documented);
    extra.removeAll(IdempotencyConfig.propertyNames());
    extra.removeAll(IdempotencyProperties.KAFKA_NAMES);
    assertThat(documented).containsAll(IdempotencyProperties.KAFKA_NAMES);
    assertThat(extra).containsExactlyInAnyOrder(IdempotencyProperties.ENABLED,
        IdempotencyProperties.FILTER_ORDER, "management.health.idempotency.enabled");
  }

  @Test
  void docs_configurationTable_namesEveryProperty() throws IOException {
    String readme =
        Files.readString(Path.of("..", "docs", "configuration.md"), StandardCharsets.UTF_8);
    String table = readme.substring(readme.indexOf("<!-- section:config -->"),
        readme.indexOf("<!-- /section:config -->"));

    for (String name : IdempotencyConfig.propertyNames()) {
      assertThat(table).as(name).contains("`" + name.substring("idempotency.".length()) + "`");
    }
  }

  @Test
  @SuppressWarnings("unchecked")
  void docs_springBootTable_namesExactlyTheBootOnlyProperties() throws IOException {
    Map<String, Object> metadata;
    try (InputStream in = getClass().getResourceAsStream(
        "/META-INF/spring-configuration-metadata.json")) {
      metadata = new ObjectMapper().readValue(in, Map.class);
    }
    List<String> bootOnly = new ArrayList<>();
    for (Map<String, Object> property : (List<Map<String, Object>>) metadata.get("properties")) {
      bootOnly.add((String) property.get("name"));
    }
    bootOnly.removeAll(IdempotencyConfig.propertyNames());
    String docs =
        Files.readString(Path.of("..", "docs", "configuration.md"), StandardCharsets.UTF_8);
    String table = docs.substring(docs.indexOf("<!-- section:spring-boot-config -->"),
        docs.indexOf("<!-- /section:spring-boot-config -->"));

    List<String> documented = new ArrayList<>();
    for (String line : table.split("\n")) {
      if (line.startsWith("| `")) {
        documented.add(line.substring(3, line.indexOf('`', 3)));
      }
    }
    assertThat(documented).containsExactlyInAnyOrderElementsOf(bootOnly);
  }
}
