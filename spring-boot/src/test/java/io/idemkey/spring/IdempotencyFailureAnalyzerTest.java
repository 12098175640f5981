package io.idemkey.spring;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.idemkey.spring.sample.SampleApplication;
import io.idemkey.migrations.TableName;
import io.idemkey.store.StoreBuilder;
import io.idemkey.store.TestDatabase;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;

/**
 * Issue 19: a bad or unknown {@code idempotency.*} property stops a real Boot start (the sample
 * application on Tomcat) with Boot's "APPLICATION FAILED TO START" report, which names the
 * property, its value, where it came from and the rule, rather than a trace that starts with
 * "Unable to start embedded Tomcat".
 */
@ExtendWith(OutputCaptureExtension.class)
class IdempotencyFailureAnalyzerTest {

  static void start(String... args) {
    new SpringApplicationBuilder(SampleApplication.class)
        .properties(Map.of(
            "spring.datasource.url", TestDatabase.jdbcUrl(),
            "spring.datasource.username", TestDatabase.user(),
            "spring.datasource.password", TestDatabase.password(),
            "server.port", "0"))
        .run(args);
  }

  @Test
  void badValue_reportNamesPropertyValueOriginAndRule(CapturedOutput output) {
    assertThatThrownBy(() -> start("--idempotency.lease=abc"))
        .hasStackTraceContaining("idempotency.lease");

    assertThat(output.getOut() + output.getErr()).contains(
        "APPLICATION FAILED TO START",
        "Property: idempotency.lease",
        "Value:    \"abc\"",
        "Origin:   \"idempotency.lease\" from property source \"commandLineArgs\"",
        "Reason:   idempotency.lease: ",
        "Update idempotency.lease in your application's configuration");
  }

  @Test
  void badValueInAFile_reportNamesTheFileAndLine(CapturedOutput output) {
    assertThatThrownBy(
        () -> start("--spring.config.additional-location=classpath:bad-lease.properties"));

    assertThat(output.getOut() + output.getErr()).contains(
        "Property: idempotency.lease",
        "Value:    \"abc\"",
        "Origin:   class path resource [bad-lease.properties]", "- 2:19");
  }

  @Test
  void unknownProperty_refused_reportSuggestsTheKnownOne(CapturedOutput output) {
    assertThatThrownBy(() -> start("--idempotency.leese=10s"))
        .hasStackTraceContaining("unknown property idempotency.leese");

    assertThat(output.getOut() + output.getErr()).contains(
        "APPLICATION FAILED TO START",
        "Property: idempotency.leese",
        "Value:    \"10s\"",
        "from property source \"commandLineArgs\"",
        "Reason:   unknown property idempotency.leese; did you mean idempotency.lease?");
  }

  @Test
  void combination_reportNamesBothProperties(CapturedOutput output) {
    assertThatThrownBy(
        () -> start("--idempotency.lease=2s", "--idempotency.jdbc.connect-timeout=2s"));

    assertThat(output.getOut() + output.getErr()).contains(
        "APPLICATION FAILED TO START",
        "Property: idempotency.lease", "Value:    \"2s\"",
        "Property: idempotency.jdbc.connect-timeout");
  }

  /**
   * Issue 23: a node whose idempotency.keys differ from its table's (recorded by the first node)
   * stops with the report, which names idempotency.keys and says how to settle it.
   */
  @Test
  void keysDifferFromTheTables_reportNamesIdempotencyKeys(CapturedOutput output) {
    TableName table = TestDatabase.freshTable();
    StoreBuilder.postgres(TestDatabase.dataSource()).tableName(table).migrate(false)
        .purgeInterval(Duration.ZERO).build().close(); // an opaque node was there first

    assertThatThrownBy(() -> start("--idempotency.table=" + table.table(),
        "--idempotency.keys=sequence", "--idempotency.purge.interval=0s"));

    assertThat(output.getOut() + output.getErr()).contains(
        "APPLICATION FAILED TO START",
        "The idemkey filter's configuration was refused:",
        "idempotency.keys: this node's keys are sequence, but table " + table
            + " is used with opaque keys",
        "Set idempotency.keys=opaque to join the table, or idempotency.table to another table");
  }
}
