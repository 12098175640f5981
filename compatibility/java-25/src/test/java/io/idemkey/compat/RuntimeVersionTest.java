package io.idemkey.compat;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The tests of this module really ran on Java 25 (not on the build's 17). */
class RuntimeVersionTest {

  @Test
  void runtimeVersion_forkedJvm_isTwentyFive() {
    assertThat(Runtime.version().feature()).isEqualTo(25);
  }
}
