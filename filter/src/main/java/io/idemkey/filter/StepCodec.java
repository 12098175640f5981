package io.idemkey.filter;

import io.idemkey.execution.Codec;

/**
 * How a step's result is stored: as bytes. The execution layer's {@link Codec}, under the name
 * handlers have used; {@link #bytes()} and {@link #text()} here; JSON through Jackson in the
 * Spring Boot starter ({@code io.idemkey.spring.JacksonStepCodec}).
 *
 * @param <T> the result
 */
public interface StepCodec<T> extends Codec<T> {

  /** Bytes stored as they are. */
  static StepCodec<byte[]> bytes() {
    return of(Codec.bytes());
  }

  /** Text stored as UTF-8. */
  static StepCodec<String> text() {
    return of(Codec.text());
  }

  /** {@code codec} as a step codec. */
  static <T> StepCodec<T> of(Codec<T> codec) {
    return new StepCodec<>() {
      @Override
      public byte[] encode(T value) {
        return codec.encode(value);
      }

      @Override
      public T decode(byte[] bytes) {
        return codec.decode(bytes);
      }
    };
  }
}
