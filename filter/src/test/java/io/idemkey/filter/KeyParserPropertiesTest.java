package io.idemkey.filter;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

class KeyParserPropertiesTest {

  @Provide
  Arbitrary<String> printableKeys() {
    return Arbitraries.strings().withCharRange((char) 0x20, (char) 0x7E).ofMinLength(1).ofMaxLength(255);
  }

  @Provide
  Arbitrary<String> tokens() {
    return Arbitraries.strings()
        .withCharRange((char) 0x21, (char) 0x7E)
        .excludeChars('"', ',')
        .ofMinLength(1)
        .ofMaxLength(255);
  }

  @Property
  void parse_serializedSfString_roundTrips(@ForAll("printableKeys") String key) {
    String header = "\"" + key.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";

    assertThat(KeyParser.parse(header)).isEqualTo(new KeyParser.Valid(key));
  }

  @Property
  void parse_token_isItself(@ForAll("tokens") String token) {
    assertThat(KeyParser.parse(token)).isEqualTo(new KeyParser.Valid(token));
  }

  @Property
  void parse_anyString_neverThrows(@ForAll String value) {
    assertThat(KeyParser.parse(value)).isNotNull();
  }

  @Property
  void parse_anyBytes_neverThrowsAndValidKeysAreAscii(@ForAll byte[] bytes) {
    KeyParser.Result result = KeyParser.parse(new String(bytes, StandardCharsets.ISO_8859_1));

    if (result instanceof KeyParser.Valid valid) {
      assertThat(valid.key()).hasSizeBetween(1, 255).matches("[\\x20-\\x7E]+");
    }
  }
}
