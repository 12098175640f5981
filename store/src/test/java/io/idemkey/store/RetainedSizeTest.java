package io.idemkey.store;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;

class RetainedSizeTest {

  @Test
  void of_latin1String_countsOneBytePerCharacterPadded() {
    assertThat(RetainedSize.of("")).isEqualTo(24 + 16);
    assertThat(RetainedSize.of("abcdefgh")).isEqualTo(24 + 24);
    assertThat(RetainedSize.of("abcdefghi")).isEqualTo(24 + 32);
  }

  @Test
  void of_stringOutsideLatin1_countsTwoBytesPerCharacter() {
    assertThat(RetainedSize.of("ΣΣΣΣ")).isEqualTo(24 + 24);
    assertThat(RetainedSize.of("ΣΣΣΣΣ")).isEqualTo(24 + 32);
    assertThat(RetainedSize.of("é".repeat(5))).isEqualTo(RetainedSize.of("e".repeat(5)));
  }

  @Test
  void of_key_countsRecordAndBothStrings() {
    IdempotencyKey key = new IdempotencyKey("principal:alice", "k".repeat(200));

    assertThat(RetainedSize.of(key))
        .isEqualTo(24 + RetainedSize.of("principal:alice") + RetainedSize.of("k".repeat(200)));
  }

  @Test
  void of_response_countsHeadersTheirStringsAndBody() {
    StoredResponse bare = new StoredResponse(204, List.of(), new byte[0], true);
    StoredResponse twoHeaders =
        new StoredResponse(
            201,
            List.of(new ResponseHeader("A", "b"), new ResponseHeader("C", "d")),
            new byte[100],
            true);
    StoredResponse threeHeaders =
        new StoredResponse(
            201,
            List.of(new ResponseHeader("A", "b"), new ResponseHeader("C", "d"),
                new ResponseHeader("E", "f")),
            new byte[100],
            true);

    assertThat(RetainedSize.of(bare)).isEqualTo(32 + 16);
    assertThat(RetainedSize.of(twoHeaders)).isEqualTo(32 + 24 + 2 * (24 + 2 * 48) + 16 + 104);
    assertThat(RetainedSize.of(threeHeaders))
        .isEqualTo(32 + 24 + 32 + 3 * (24 + 2 * 48) + 16 + 104);
    assertThat(twoHeaders.weightInBytes()).isEqualTo(RetainedSize.of(twoHeaders));
  }

  @Test
  void ofCompletedEntry_addsKeyFingerprintAndMapOverheadToResponse() {
    IdempotencyKey key = new IdempotencyKey("scope", "key");
    StoredResponse response = new StoredResponse(200, List.of(), new byte[10], true);

    assertThat(RetainedSize.ofCompletedEntry(key, new Fingerprint(new byte[32]), response))
        .isEqualTo(RetainedSize.MAP_ENTRY + RetainedSize.VALUE_RECORD + RetainedSize.of(key)
            + 16 + 48 + RetainedSize.of(response));
  }
}
