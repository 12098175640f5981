package io.idemkey.execution;

import java.nio.charset.StandardCharsets;

/**
 * How a value is stored: as bytes. The result of a step (SPEC §12) and the result of a piece of
 * work run once per key ({@link IdempotentExecutor#execute}) go through one. {@link #bytes()},
 * {@link #text()} and {@link #none()} here; JSON through Jackson in the Spring Boot starter.
 *
 * <p>Implementations should be thread-safe: one codec serves every call.
 *
 * @param <T> the value
 */
public interface Codec<T> {

  /** The bytes to store for {@code value}. */
  byte[] encode(T value);

  /** The value that {@code bytes}, as {@link #encode} made them, stand for. */
  T decode(byte[] bytes);

  /** Bytes stored as they are. */
  static Codec<byte[]> bytes() {
    return new Codec<>() {
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
  static Codec<String> text() {
    return new Codec<>() {
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

  /**
   * No result: work run for its effects alone (a message handler that writes a row). Stores no
   * bytes; its work returns {@code Boolean.TRUE} (a result is never null) and a replay gets it
   * back.
   */
  static Codec<Boolean> none() {
    return new Codec<>() {
      @Override
      public byte[] encode(Boolean value) {
        return new byte[0];
      }

      @Override
      public Boolean decode(byte[] bytes) {
        return Boolean.TRUE;
      }
    };
  }
}
