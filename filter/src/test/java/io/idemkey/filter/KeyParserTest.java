package io.idemkey.filter;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class KeyParserTest {

  static String keyOf(String header) {
    KeyParser.Result result = KeyParser.parse(header);
    assertThat(result).isInstanceOf(KeyParser.Valid.class);
    return ((KeyParser.Valid) result).key();
  }

  static String reasonOf(String header) {
    KeyParser.Result result = KeyParser.parse(header);
    assertThat(result).isInstanceOf(KeyParser.Invalid.class);
    return ((KeyParser.Invalid) result).reason();
  }

  @Test
  void parse_bareToken_isTheKey() {
    assertThat(keyOf("8e03978e-40d5-43e8-bc93-6894a57f9324"))
        .isEqualTo("8e03978e-40d5-43e8-bc93-6894a57f9324");
    assertThat(keyOf("  abc\t")).isEqualTo("abc");
  }

  @Test
  void parse_sfString_isUnquotedWithEscapes() {
    assertThat(keyOf("\"abc\"")).isEqualTo("abc");
    assertThat(keyOf("\"a b\"")).isEqualTo("a b");
    assertThat(keyOf("\"say \\\"hi\\\" \\\\o/\"")).isEqualTo("say \"hi\" \\o/");
  }

  @Test
  void parse_lengthLimits_areAfterUnquoting() {
    assertThat(keyOf("k".repeat(255))).hasSize(255);
    assertThat(keyOf("\"" + "\\\\".repeat(255) + "\"")).hasSize(255);
    assertThat(reasonOf("k".repeat(256)))
        .isEqualTo("the key is 256 characters long; at most 255 allowed");
  }

  @ParameterizedTest
  @CsvSource(
      delimiter = '|',
      value = {
        "''|the key is empty",
        "'   '|the key is empty",
        "'\"\"'|the key is empty",
        "'a,b'|the key must be one value, not a list",
        "'\"a\", \"b\"'|the key must be one value, not a list",
        "'\"a\";x=1'|the key must not carry parameters",
        "'\"abc'|the quoted key has no closing quote",
        "'\"ab\\'|the quoted key ends inside an escape",
        "'\"a\\nb\"'|only \\\" and \\\\ may be escaped in a quoted key; found \\U+006E",
        "'\"a\"b'|characters after the closing quote of the key",
        "'ab\"c'|a quote inside an unquoted key at position 2",
        "'a b'|an unquoted key may hold only visible ASCII characters; found U+0020 at position 1",
      })
  void parse_invalid_givesPreciseReason(String header, String reason) {
    assertThat(reasonOf(header)).isEqualTo(reason);
  }

  @Test
  void parse_controlAndNonAscii_areInvalid() {
    assertThat(reasonOf("a\u0001b")).contains("U+0001");
    assertThat(reasonOf("caf\u00e9")).contains("U+00E9");
    assertThat(reasonOf("\"a\u007fb\"")).contains("U+007F");
    assertThat(reasonOf(null)).isEqualTo("the key is missing");
  }
}
