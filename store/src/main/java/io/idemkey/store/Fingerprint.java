package io.idemkey.store;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
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

  /**
   * The fingerprint of work that its key alone names (a message whose key says "same event"):
   * the key's own digest, the same for every call with it.
   */
  public static Fingerprint ofKey(IdempotencyKey key) {
    return of(
        "idemkey-key".getBytes(StandardCharsets.UTF_8),
        key.scope().getBytes(StandardCharsets.UTF_8),
        key.key().getBytes(StandardCharsets.UTF_8));
  }

  /**
   * The digest of {@code parts}, each prefixed with its length (four bytes, big-endian), so that
   * no two different lists of parts digest the same bytes.
   */
  public static Fingerprint of(byte[]... parts) {
    MessageDigest digest;
    try {
      digest = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is required of every Java runtime", e);
    }
    for (byte[] part : parts) {
      digest.update(ByteBuffer.allocate(4).putInt(part.length).array());
      digest.update(part);
    }
    return new Fingerprint(digest.digest());
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
