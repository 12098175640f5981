package io.idemkey.store;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;

/**
 * The byte encoding of stored response headers: a count, then each name and value as modified
 * UTF-8 with a length prefix ({@link DataOutputStream#writeUTF}).
 *
 * <p>Stateless and thread-safe.
 */
final class HeaderCodec {

  private HeaderCodec() {}

  static byte[] encode(List<ResponseHeader> headers) {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream(32 * (headers.size() + 1));
    try (DataOutputStream out = new DataOutputStream(bytes)) {
      out.writeInt(headers.size());
      for (ResponseHeader header : headers) {
        out.writeUTF(header.name());
        out.writeUTF(header.value());
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e); // cannot happen on a byte array
    }
    return bytes.toByteArray();
  }

  /**
   * Decodes what {@link #encode} wrote.
   *
   * @throws IllegalArgumentException if the bytes are not such an encoding
   */
  static List<ResponseHeader> decode(byte[] encoded) {
    try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(encoded))) {
      int count = in.readInt();
      if (count < 0 || count > encoded.length) {
        throw new IllegalArgumentException("corrupt header encoding: count " + count);
      }
      List<ResponseHeader> headers = new ArrayList<>(count);
      for (int i = 0; i < count; i++) {
        headers.add(new ResponseHeader(in.readUTF(), in.readUTF()));
      }
      return headers;
    } catch (IOException e) {
      throw new IllegalArgumentException("corrupt header encoding", e);
    }
  }
}
