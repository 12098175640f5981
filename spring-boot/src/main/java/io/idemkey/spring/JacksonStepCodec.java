package io.idemkey.spring;

import io.idemkey.filter.StepCodec;
import java.util.Objects;
import tools.jackson.databind.ObjectMapper;

/**
 * Step results (SPEC §12) stored as JSON through the application's Jackson {@link ObjectMapper}:
 *
 * <pre>{@code
 * Charge charge = steps.run("charge", JacksonStepCodec.of(mapper, Charge.class),
 *     stepKey -> processor.charge(amount, stepKey));
 * }</pre>
 *
 * <p>Thread-safe, as the mapper is.
 *
 * @param <T> the result
 */
public final class JacksonStepCodec<T> implements StepCodec<T> {

  private final ObjectMapper mapper;
  private final Class<T> type;

  private JacksonStepCodec(ObjectMapper mapper, Class<T> type) {
    this.mapper = Objects.requireNonNull(mapper, "mapper");
    this.type = Objects.requireNonNull(type, "type");
  }

  /** Results of {@code type}, written and read by {@code mapper}. */
  public static <T> JacksonStepCodec<T> of(ObjectMapper mapper, Class<T> type) {
    return new JacksonStepCodec<>(mapper, type);
  }

  /**
   * @throws tools.jackson.core.JacksonException if {@code value} cannot be written as JSON
   */
  @Override
  public byte[] encode(T value) {
    return mapper.writeValueAsBytes(value);
  }

  /**
   * @throws tools.jackson.core.JacksonException if {@code bytes} is not a {@code T} as JSON
   */
  @Override
  public T decode(byte[] bytes) {
    return mapper.readValue(bytes, type);
  }
}
