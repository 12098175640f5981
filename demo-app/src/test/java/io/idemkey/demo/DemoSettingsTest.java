package io.idemkey.demo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
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

  /**
   * Every setting the demo reads (a {@code DemoSettings.setting(ENV, property, ...)} call anywhere
   * in its sources), as environment variable and system property.
   */
  static Map<String, String> settingsInTheCode() throws IOException {
    Pattern call = Pattern.compile("setting\\(\\s*\"([A-Z_]+)\",\\s*\"([a-z.-]+)\"");
    Map<String, String> settings = new LinkedHashMap<>();
    try (Stream<Path> files = Files.walk(Path.of("src", "main", "java"))) {
      for (Path file : files.filter(f -> f.toString().endsWith(".java")).toList()) {
        Matcher matcher = call.matcher(Files.readString(file, StandardCharsets.UTF_8));
        while (matcher.find()) {
          settings.put(matcher.group(1), matcher.group(2));
        }
      }
    }
    return settings;
  }

  @Test
  void usage_namesEverySettingTheCodeReads() throws IOException {
    Map<String, String> settings = settingsInTheCode();

    assertThat(settings).containsKeys("PORT", "PROCESSOR_URL");
    settings.forEach((environment, property) ->
        assertThat(DemoSettings.USAGE).as(environment)
            .containsPattern("(?m)^\\s+" + environment + "\\s+" + Pattern.quote(property)));
  }

  @Test
  void docsSettingsTable_namesExactlyTheSettingsTheCodeReads() throws IOException {
    String docs = Files.readString(Path.of("..", "docs", "demo.md"), StandardCharsets.UTF_8);
    String table = docs.substring(docs.indexOf("<!-- section:demo-settings -->"),
        docs.indexOf("<!-- /section:demo-settings -->"));
    Map<String, String> documented = new LinkedHashMap<>();
    Matcher row = Pattern.compile("(?m)^\\| `([A-Z_]+)` \\| `([a-z.-]+)` \\|").matcher(table);
    while (row.find()) {
      documented.put(row.group(1), row.group(2));
    }

    assertThat(documented).containsExactlyInAnyOrderEntriesOf(settingsInTheCode());
  }
}
