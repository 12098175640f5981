package io.idemkey.filter;

import java.nio.charset.StandardCharsets;

/**
 * How a step's result is stored: as bytes. {@link #bytes()} and {@link #text()} here; JSON
 * through Jackson in the Spring Boot starter ({@code io.idemkey.spring.JacksonStepCodec}).
 *
 * @param <T> the result
 */
public interface StepCodec<T> {

  /** The bytes to store for {@code value}. */
  byte[] encode(T value);

  /** The value that {@code bytes}, as {@link #encode} made them, stand for. */
  T decode(byte[] bytes);

  /** Bytes stored as they are. */
  static StepCodec<byte[]> bytes() {
    return new StepCodec<>() {
      @Override
      public byte[] encode(byte[] value) {
        return value.clone();
      }

      @Override
      public byte[] decode(byte[] bytes) {
        return bytes;
      }
    };
  }

  /** Text stored as UTF-8. */
  static StepCodec<String> text() {
    return new StepCodec<>() {
      @Override
      public byte[] encode(String value) {
        return value.getBytes(StandardCharsets.UTF_8);
      }

      @Override
      public String decode(byte[] bytes) {
        return new String(bytes, StandardCharsets.UTF_8);
      }
    };
  }
}
