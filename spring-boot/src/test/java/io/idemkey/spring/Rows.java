package io.idemkey.spring;

import io.idemkey.store.TestDatabase;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;

/** Counts the sample's rows for a reference, on a pool of the tests' own. */
final class Rows {

  private Rows() {}

  static int orders(String reference) {
    return count("SELECT count(*) FROM orders WHERE reference = ?", reference);
  }

  static int events(String reference) {
    return count("SELECT count(*) FROM order_events WHERE reference = ?", reference);
  }

  static boolean tableExists(String qualifiedName) {
    try (Connection c = TestDatabase.dataSource().getConnection();
        PreparedStatement s = c.prepareStatement("SELECT to_regclass(?)")) {
      s.setString(1, qualifiedName);
      try (ResultSet r = s.executeQuery()) {
        return r.next() && r.getString(1) != null;
      }
    } catch (SQLException e) {
      throw new IllegalStateException(e);
    }
  }

  private static int count(String sql, String reference) {
    try (Connection c = TestDatabase.dataSource().getConnection();
        PreparedStatement s = c.prepareStatement(sql)) {
      s.setString(1, reference);
      try (ResultSet r = s.executeQuery()) {
        r.next();
        return r.getInt(1);
      }
    } catch (SQLException e) {
      throw new IllegalStateException(e);
    }
  }
}
