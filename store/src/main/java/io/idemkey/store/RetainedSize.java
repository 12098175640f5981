package io.idemkey.store;

/**
 * Estimates of the heap that a completed entry retains in an in-process map, in bytes: what a
 * cache bounded by {@code cache.max-bytes} must weigh, so that the bound holds for the heap and
 * not only for the response bodies.
 *
 * <p>The figures are those of a 64-bit HotSpot JVM with compressed references and compact strings,
 * the defaults below a 32 GiB heap: 12-byte object headers, 16-byte array headers, 4-byte
 * references, every object padded to 8 bytes; a {@code String} is 24 bytes plus its byte array,
 * one byte a character when every character is Latin-1, else two. A heap of 32 GiB or more spends
 * more on headers and references than this counts.
 *
 * <p>Stateless and thread-safe.
 */
final class RetainedSize {

  private static final int HEADER = 12;
  private static final int ARRAY_HEADER = 16;
  private static final int REFERENCE = 4;

  /**
   * What the map spends on one entry beside its key and value objects, measured with
   * {@code jmap -histo:live} on Caffeine 3.2 (maximum weight and variable expiry): its node
   * (56 bytes), the {@code ConcurrentHashMap} node (32), its share of the hash table (4 to 11
   * bytes, resized at three quarters full) and of the frequency sketch (8 to 16 bytes).
   */
  static final int MAP_ENTRY = 56 + 32 + 8 + 12;

  /**
   * The value record that holds the fingerprint and response, at its largest: the memory store's
   * (header, three references, the token, and its {@code Instant}: 32 + 24 bytes). The cache's
   * record is 32 bytes; the difference is under 3% of a small response's entry.
   */
  static final int VALUE_RECORD = 56;

  private RetainedSize() {}

  /**
   * The heap retained by one completed entry: the key, the fingerprint, the response and what the
   * map spends on the entry. The one estimate that {@link CachingStore} and {@link MemoryStore}
   * weigh their entries with.
   */
  static long ofCompletedEntry(
      IdempotencyKey key, Fingerprint fingerprint, StoredResponse response) {
    return MAP_ENTRY + VALUE_RECORD + of(key) + of(fingerprint) + of(response);
  }

  /** The record and its two strings. */
  static long of(IdempotencyKey key) {
    return object(2 * REFERENCE) + of(key.scope()) + of(key.key());
  }

  /** The record and its digest array. */
  static long of(Fingerprint fingerprint) {
    return object(REFERENCE) + array(Fingerprint.LENGTH);
  }

  /**
   * The record (status, two references, a flag), its immutable header list, each header and its
   * strings, and the body array.
   */
  static long of(StoredResponse response) {
    long size = object(Integer.BYTES + 2 * REFERENCE + 1) + list(response.headers().size());
    for (ResponseHeader header : response.headers()) {
      size += object(2 * REFERENCE) + of(header.name()) + of(header.value());
    }
    return size + array(response.bodyLength());
  }

  /** A string: its object (array reference, hash, coder, hash-is-zero) and its byte array. */
  static long of(String string) {
    return object(REFERENCE + Integer.BYTES + 2) + array(latin1(string) ? string.length()
        : 2L * string.length());
  }

  /**
   * {@code List.copyOf}: the shared empty list; a two-field list for one or two elements; else a
   * list object and its array.
   */
  private static long list(int size) {
    if (size == 0) {
      return 0;
    }
    if (size <= 2) {
      return object(2 * REFERENCE);
    }
    return object(REFERENCE + 1) + array((long) size * REFERENCE);
  }

  private static long object(int fieldBytes) {
    return padded(HEADER + fieldBytes);
  }

  private static long array(long contentBytes) {
    return padded(ARRAY_HEADER + contentBytes);
  }

  private static long padded(long bytes) {
    return (bytes + 7) & ~7L;
  }

  private static boolean latin1(String string) {
    for (int i = 0; i < string.length(); i++) {
      if (string.charAt(i) > 0xFF) {
        return false;
      }
    }
    return true;
  }
}
