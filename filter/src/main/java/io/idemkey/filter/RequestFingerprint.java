package io.idemkey.filter;

import io.idemkey.store.Fingerprint;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;

/**
 * The SHA-256 fingerprint of a request (SPEC §4): method, path and query, the values of the
 * fingerprint headers, and the body. Every part is length-prefixed, so no two different requests
 * encode to the same bytes by moving a boundary.
 *
 * <p>Stateless and thread-safe.
 */
final class RequestFingerprint {

  /** Cloned for each request: cheaper than a provider lookup. */
  private static final MessageDigest SHA_256 = newDigest();

  private RequestFingerprint() {}

  /**
   * Computes the fingerprint.
   *
   * @param headerNames the fingerprint headers, in configuration order (names are case-insensitive)
   * @param headerValues the values of a header in the request, in order; empty when absent
   * @param body the body bytes; only the first {@code bodyLength} count
   */
  static Fingerprint compute(
      String method,
      String pathAndQuery,
      List<String> headerNames,
      Function<String, List<String>> headerValues,
      byte[] body,
      int bodyLength) {
    MessageDigest sha256 = copyOf(SHA_256);
    part(sha256, method);
    part(sha256, pathAndQuery);
    for (String name : headerNames) {
      part(sha256, name.toLowerCase(Locale.ROOT));
      List<String> values = headerValues.apply(name);
      length(sha256, values.size());
      for (String value : values) {
        part(sha256, value);
      }
    }
    length(sha256, bodyLength);
    sha256.update(body, 0, bodyLength);
    return new Fingerprint(sha256.digest());
  }

  private static void part(MessageDigest sha256, String text) {
    byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
    length(sha256, bytes.length);
    sha256.update(bytes);
  }

  /** Four bytes, big-endian. */
  private static void length(MessageDigest sha256, int length) {
    sha256.update((byte) (length >>> 24));
    sha256.update((byte) (length >>> 16));
    sha256.update((byte) (length >>> 8));
    sha256.update((byte) length);
  }

  private static MessageDigest copyOf(MessageDigest prototype) {
    try {
      return (MessageDigest) prototype.clone();
    } catch (CloneNotSupportedException e) {
      return newDigest(); // a provider whose SHA-256 cannot be cloned
    }
  }

  private static MessageDigest newDigest() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("every Java platform has SHA-256", e);
    }
  }
}
