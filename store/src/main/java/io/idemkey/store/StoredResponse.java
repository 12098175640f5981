package io.idemkey.store;

import java.io.IOException;
import java.io.OutputStream;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * The response recorded for a completed key: what every duplicate gets back.
 *
 * <p>{@link #toString()} never prints the body, which may hold personal data. The body array is
 * copied in and never handed out; use {@link #writeBodyTo(OutputStream)} to replay it.
 *
 * @param status the HTTP status, 100 to 599
 * @param headers the header fields, in order
 * @param body the body bytes; empty when {@code bodyStored} is false
 * @param bodyStored false when the body was too large to store: the key is completed, but a
 *     duplicate cannot get the body back
 */
public record StoredResponse(
    int status, List<ResponseHeader> headers, byte[] body, boolean bodyStored) {

  /**
   * Validates and copies the response.
   *
   * @throws IllegalArgumentException if the status is outside 100–599, or a body is given with
   *     {@code bodyStored} false
   */
  public StoredResponse {
    if (status < 100 || status > 599) {
      throw new IllegalArgumentException("status must be 100 to 599, was " + status);
    }
    headers = List.copyOf(headers);
    Objects.requireNonNull(body, "body");
    if (!bodyStored && body.length != 0) {
      throw new IllegalArgumentException("a response whose body is not stored has no body bytes");
    }
    body = body.clone();
  }

  /** A response whose body was not stored because it was too large. */
  public static StoredResponse withoutBody(int status, List<ResponseHeader> headers) {
    return new StoredResponse(status, headers, new byte[0], false);
  }

  /** A copy of the body bytes. */
  @Override
  public byte[] body() {
    return body.clone();
  }

  /** The body array itself, for stores in this package that only read it: no copy. */
  byte[] bodyBytes() {
    return body;
  }

  /** The number of body bytes. */
  public int bodyLength() {
    return body.length;
  }

  /**
   * Writes the body to {@code out} without copying it.
   *
   * @throws IOException if {@code out} fails
   */
  public void writeBodyTo(OutputStream out) throws IOException {
    out.write(body);
  }

  /**
   * An estimate of the heap this response retains, in bytes: the record, its header list, each
   * header and its strings, and the body array. A cache entry retains more than its response
   * (the key, the fingerprint, the cache's own node); the stores weigh entries with all of it.
   */
  public long weightInBytes() {
    return RetainedSize.of(this);
  }

  @Override
  public boolean equals(Object other) {
    return other instanceof StoredResponse that
        && status == that.status
        && bodyStored == that.bodyStored
        && headers.equals(that.headers)
        && Arrays.equals(body, that.body);
  }

  @Override
  public int hashCode() {
    return Objects.hash(status, headers, bodyStored, Arrays.hashCode(body));
  }

  @Override
  public String toString() {
    return "StoredResponse[status=" + status + ", headers=" + headers.size() + ", body="
        + (bodyStored ? body.length + " bytes" : "not stored") + "]";
  }
}
