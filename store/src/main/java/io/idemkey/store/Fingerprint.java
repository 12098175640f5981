package io.idemkey.store;

import java.util.Arrays;
import java.util.HexFormat;
import java.util.Objects;

/**
 * The SHA-256 digest of a request, used to tell a retry of the same request from a reuse of the
 * key for a different one. Compared by content.
 *
 * @param sha256 the 32 digest bytes; copied, never exposed
 */
public record Fingerprint(byte[] sha256) {

  /** The digest length in bytes. */
  public static final int LENGTH = 32;

  /**
   * Validates and copies the digest.
   *
   * @throws IllegalArgumentException if the digest is not {@value #LENGTH} bytes
   */
  public Fingerprint {
    Objects.requireNonNull(sha256, "sha256");
    if (sha256.length != LENGTH) {
      throw new IllegalArgumentException(
          "fingerprint must be " + LENGTH + " bytes, was " + sha256.length);
    }
    sha256 = sha256.clone();
  }

  /** A copy of the digest bytes. */
  @Override
  public byte[] sha256() {
    return sha256.clone();
  }

  @Override
  public boolean equals(Object other) {
    return other instanceof Fingerprint that && Arrays.equals(sha256, that.sha256);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(sha256);
  }

  @Override
  public String toString() {
    return "Fingerprint[" + HexFormat.of().formatHex(sha256) + "]";
  }
}
