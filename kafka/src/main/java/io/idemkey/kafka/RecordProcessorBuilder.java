package io.idemkey.kafka;

import io.idemkey.execution.IdempotentExecutor;
import java.util.Objects;

/**
 * The builder of a {@link RecordProcessor}. Not thread-safe; the processor is.
 */
public final class RecordProcessorBuilder {

  private final IdempotentExecutor executor;
  private String group;
  private RecordKeys keys = RecordKeys.offsets();

  RecordProcessorBuilder(IdempotentExecutor executor) {
    this.executor = Objects.requireNonNull(executor, "executor");
  }

  /**
   * The consumer group ({@code group.id}) whose records the processor handles: each group
   * handles each record once.
   *
   * @throws IllegalArgumentException if empty
   */
  public RecordProcessorBuilder group(String group) {
    Objects.requireNonNull(group, "group");
    if (group.isEmpty()) {
      throw new IllegalArgumentException("group must not be empty");
    }
    this.group = group;
    return this;
  }

  /** Where the keys come from; default {@link RecordKeys#offsets()}. */
  public RecordProcessorBuilder keys(RecordKeys keys) {
    this.keys = Objects.requireNonNull(keys, "keys");
    return this;
  }

  /**
   * The processor.
   *
   * @throws IllegalStateException if no group was set
   */
  public RecordProcessor build() {
    if (group == null) {
      throw new IllegalStateException("a record processor needs its consumer group: group(...)");
    }
    return new KeyedRecordProcessor(executor, group, keys);
  }
}
