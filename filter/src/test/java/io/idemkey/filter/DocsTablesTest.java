package io.idemkey.filter;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * The tables in docs/ and the README that list what the filter has — problem types, listener
 * outcomes, configuration properties — name exactly what the code has: a new entry in the code
 * without a row, or a row for something the code no longer has, fails here.
 */
class DocsTablesTest {

  private static final Pattern CODE = Pattern.compile("`([^`]+)`");

  @Test
  void problemTypesTable_namesExactlyTheProblemTypes() throws IOException {
    Set<String> documented = firstColumn(section(docs("behaviour.md"), "problem-types"));

    assertThat(documented).containsExactlyInAnyOrderElementsOf(
        Arrays.stream(Problem.values()).map(Problem::type).toList());
  }

  @Test
  void readmeAnswersTable_namesEveryProblemType() throws IOException {
    String answers = section(readme(), "answers");

    for (Problem problem : Problem.values()) {
      String name = problem.type().substring("urn:idemkey:problem:".length());
      assertThat(answers).as(name).contains("`" + name + "`");
      assertThat(answers).as(name).contains(Integer.toString(problem.status()));
    }
  }

  @Test
  void metricOutcomesTable_namesExactlyTheListenerOutcomes() throws IOException {
    Set<String> documented = firstColumn(section(docs("operations.md"), "metric-outcomes"));

    assertThat(documented).containsExactlyInAnyOrderElementsOf(
        Arrays.stream(IdempotencyListener.Outcome.values())
            .map(outcome -> outcome.name().toLowerCase(Locale.ROOT)).toList());
  }

  @Test
  void configurationTable_namesExactlyTheProperties() throws IOException {
    Set<String> documented = firstColumn(section(docs("configuration.md"), "config"));

    assertThat(documented).containsExactlyInAnyOrderElementsOf(unprefixed());
  }

  @Test
  void readmeConfigurationAtAGlance_namesOnlyRealProperties() throws IOException {
    Set<String> documented = firstColumn(section(readme(), "config-glance"));

    assertThat(documented).isNotEmpty();
    assertThat(unprefixed()).containsAll(documented);
  }

  private static Set<String> unprefixed() {
    return IdempotencyConfig.propertyNames().stream()
        .map(name -> name.substring("idempotency.".length()))
        .collect(Collectors.toSet());
  }

  /** Every `code` span in the first cell of each row of the table, the header row left out. */
  static Set<String> firstColumn(String table) {
    Set<String> names = new LinkedHashSet<>();
    boolean body = false;
    for (String line : table.split("\n")) {
      if (line.startsWith("|---")) {
        body = true;
        continue;
      }
      if (!body || !line.startsWith("| `")) {
        continue;
      }
      String cell = line.substring(1, line.indexOf('|', 1));
      Matcher matcher = CODE.matcher(cell);
      while (matcher.find()) {
        names.add(matcher.group(1));
      }
    }
    return names;
  }

  /** The text between {@code <!-- section:NAME -->} and {@code <!-- /section:NAME -->}. */
  static String section(String text, String name) {
    String open = "<!-- section:" + name + " -->";
    String close = "<!-- /section:" + name + " -->";
    int start = text.indexOf(open);
    int end = text.indexOf(close);
    assertThat(start).as(open).isNotNegative();
    assertThat(end).as(close).isGreaterThan(start);
    return text.substring(start + open.length(), end);
  }

  private static String docs(String file) throws IOException {
    return Files.readString(Path.of("..", "docs", file), StandardCharsets.UTF_8);
  }

  private static String readme() throws IOException {
    return Files.readString(Path.of("..", "README.md"), StandardCharsets.UTF_8);
  }
}
