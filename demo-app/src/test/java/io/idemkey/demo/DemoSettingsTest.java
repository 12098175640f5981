package io.idemkey.demo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Issue 19: the demo's command line: --help prints the usage, a bad argument is one line. */
class DemoSettingsTest {

  @Test
  void help_printsUsageWithEverySetting_startsNothing() throws Exception {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    PrintStream console = System.out;
    System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
    try {
      DemoApp.main(new String[] {"--help"});
    } finally {
      System.setOut(console);
    }
    assertThat(out.toString(StandardCharsets.UTF_8))
        .startsWith("Usage: java -jar demo-app/target/demo-app.jar [--clean] [--help]")
        .contains("PORT", "IDEMPOTENCY_JDBC_URL", "IDEMKEY_DEMO_DATA", "DEMO_DB_PORT",
            "DEMO_SHUTDOWN_GRACE", "DEMO_IDLE_TIMEOUT", "-Didempotency.")
        .doesNotContain("Exception");
  }

  @Test
  void unknownArgument_namesItAndTheArgumentsThatExist() {
    assertThatThrownBy(() -> DemoSettings.load(List.of("--verbose")))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("unknown argument --verbose (the demo takes --clean and --help)");
  }
}
