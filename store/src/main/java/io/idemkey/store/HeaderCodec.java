package io.idemkey.store;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The byte encoding of stored response headers: the marker {@value #LENGTHS_AS_INTS}, a count,
 * then each name and value as UTF-8 after its length as an int, so that a header of any length
 * encodes. Rows written before that marker existed (a count, then each name and value as
 * {@link DataOutputStream#writeUTF} wrote them, at most 64 KiB each) still decode.
 *
 * <p>Stateless and thread-safe.
 */
final class HeaderCodec {

  /** Marks the current encoding; the first encoding began with a count, never negative. */
  private static final int LENGTHS_AS_INTS = -2;

  private HeaderCodec() {}

  static byte[] encode(List<ResponseHeader> headers) {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream(32 * (headers.size() + 1));
    try (DataOutputStream out = new DataOutputStream(bytes)) {
      out.writeInt(LENGTHS_AS_INTS);
      out.writeInt(headers.size());
      for (ResponseHeader header : headers) {
        writeString(out, header.name());
        writeString(out, header.value());
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e); // a byte array throws none
    }
    return bytes.toByteArray();
  }

  private static void writeString(DataOutputStream out, String text) throws IOException {
    byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
    out.writeInt(utf8.length);
    out.write(utf8);
  }

  /**
   * Decodes what {@link #encode} wrote, in either encoding.
   *
   * @throws IllegalArgumentException if the bytes are not such an encoding
   */
  static List<ResponseHeader> decode(byte[] encoded) {
    try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(encoded))) {
      int first = in.readInt();
      boolean lengthsAsInts = first == LENGTHS_AS_INTS;
      int count = lengthsAsInts ? in.readInt() : first;
      if (count < 0 || count > encoded.length) {
        throw new IllegalArgumentException("corrupt header encoding: count " + count);
      }
      List<ResponseHeader> headers = new ArrayList<>(count);
      for (int i = 0; i < count; i++) {
        headers.add(
            lengthsAsInts
                ? new ResponseHeader(readString(in, encoded.length),
                    readString(in, encoded.length))
                : new ResponseHeader(in.readUTF(), in.readUTF()));
      }
      return headers;
    } catch (IOException e) {
      throw new IllegalArgumentException("corrupt header encoding", e);
    }
  }

  private static String readString(DataInputStream in, int limit) throws IOException {
    int length = in.readInt();
    if (length < 0 || length > limit) {
      throw new IllegalArgumentException("corrupt header encoding: length " + length);
    }
    byte[] utf8 = in.readNBytes(length);
    if (utf8.length != length) {
      throw new IllegalArgumentException("corrupt header encoding: truncated");
    }
    return new String(utf8, StandardCharsets.UTF_8);
  }
}
