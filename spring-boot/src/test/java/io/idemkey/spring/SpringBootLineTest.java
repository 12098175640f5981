package io.idemkey.spring;

import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.idemkey.filter.InvalidConfigurationException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class SpringBootLineTest {

  @ParameterizedTest
  @ValueSource(strings = {"3.5.0", "3.5.7", "4.0.7", "4.1.0-SNAPSHOT", "5.0.0-M1"})
  void requireSupported_threeFiveOrLater_passes(String version) {
    assertThatCode(() -> SpringBootLine.requireSupported(version)).doesNotThrowAnyException();
  }

  @ParameterizedTest
  @ValueSource(strings = {"3.4.11", "3.0.0", "2.7.18"})
  void requireSupported_olderLine_refusedNamingTheSupportedLinesAndTheVersion(String version) {
    assertThatThrownBy(() -> SpringBootLine.requireSupported(version))
        .isInstanceOf(InvalidConfigurationException.class)
        .hasMessageContaining("3.5.x and 4.0.x")
        .hasMessageContaining("Spring Boot " + version);
  }

  @Test
  void requireSupported_versionUnknown_passes() {
    assertThatCode(() -> SpringBootLine.requireSupported(null)).doesNotThrowAnyException();
  }
}
