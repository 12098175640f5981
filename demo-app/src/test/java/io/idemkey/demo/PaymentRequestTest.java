package io.idemkey.demo;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The payment parser reads JSON as RFC 8259 writes it: numbers are ASCII digits, whitespace is
 * space, tab, line feed and carriage return. Issue 23: Arabic-Indic digits were read as an amount
 * (Character.isDigit and Long.parseLong take every Unicode digit), and a payment was made.
 */
class PaymentRequestTest {

  @ParameterizedTest
  @ValueSource(strings = {
      "{\"amount\": \u0661\u0662\u0665\u0660, \"currency\": \"EUR\"}", // Arabic-Indic ١٢٥٠
      "{\"amount\": \u06f1\u06f2\u06f5\u06f0, \"currency\": \"EUR\"}", // Extended Arabic-Indic
      "{\"amount\": \u0967\u0968\u096b\u0966, \"currency\": \"EUR\"}", // Devanagari
      "{\"amount\": \uff11\uff12\uff15\uff10, \"currency\": \"EUR\"}", // fullwidth
      "{\"amount\": 12\u0665\u0660, \"currency\": \"EUR\"}",           // ASCII, then Arabic-Indic
      "{\"amount\": -\u0661, \"currency\": \"EUR\"}"})
  void parse_nonAsciiDigitsInAmount_isInvalid(String json) {
    assertThat(PaymentRequest.parse(json)).isInstanceOf(PaymentRequest.Invalid.class);
  }

  @ParameterizedTest
  @ValueSource(strings = {
      "{\"amount\":\u20031250, \"currency\": \"EUR\"}",  // em space
      "{\"amount\": 1250,\u3000\"currency\": \"EUR\"}",  // ideographic space
      "\u000b{\"amount\": 1250, \"currency\": \"EUR\"}", // vertical tab
      "{\"amount\": 1250, \"currency\": \"EUR\"}\u000c", // form feed
      "{\u001c\"amount\": 1250, \"currency\": \"EUR\"}", // file separator
      "{\"amount\": 1250\u2028, \"currency\": \"EUR\"}"}) // line separator
  void parse_whitespaceJsonDoesNotHave_isInvalid(String json) {
    assertThat(PaymentRequest.parse(json)).isInstanceOf(PaymentRequest.Invalid.class);
  }

  @ParameterizedTest
  @ValueSource(strings = {"01250", "00", "-01", "+1250", "- 1", "1_250"})
  void parse_amountThatIsNotAJsonInteger_isInvalid(String amount) {
    assertThat(PaymentRequest.parse("{\"amount\": " + amount + ", \"currency\": \"EUR\"}"))
        .isInstanceOf(PaymentRequest.Invalid.class);
  }

  @ParameterizedTest
  @ValueSource(strings = {
      "{\"amount\": 1250, \"currency\": \"EUR\"}",
      "{\"amount\":1250,\"currency\":\"EUR\"}",
      " \t\r\n{ \"currency\" : \"EUR\" ,\n\t\"amount\" : 1250 }\r\n "})
  void parse_asciiDigitsAndJsonWhitespace_isTheRequest(String json) {
    assertThat(PaymentRequest.parse(json))
        .isEqualTo(new PaymentRequest.Valid(new PaymentRequest(1250, "EUR")));
  }

  @ParameterizedTest
  @ValueSource(strings = {"9223372036854775807", "10"})
  void parse_largestAndSmallAmounts_areRead(String amount) {
    assertThat(PaymentRequest.parse("{\"amount\": " + amount + ", \"currency\": \"EUR\"}"))
        .isEqualTo(new PaymentRequest.Valid(new PaymentRequest(Long.parseLong(amount), "EUR")));
  }

  @ParameterizedTest
  @ValueSource(strings = {"9223372036854775808", "99999999999999999999999"})
  void parse_amountBeyondALong_isInvalid(String amount) {
    assertThat(PaymentRequest.parse("{\"amount\": " + amount + ", \"currency\": \"EUR\"}"))
        .isInstanceOf(PaymentRequest.Invalid.class);
  }
}
